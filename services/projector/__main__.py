from speakerline_projector.main import main

main()
