from speakerline_notification.main import main

main()
