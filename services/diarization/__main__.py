from speakerline_diarization.main import main

main()
