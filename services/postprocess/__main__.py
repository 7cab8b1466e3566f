from speakerline_postprocess.main import main

main()
