from speakerline_ingest.main import main

main()
