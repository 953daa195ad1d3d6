"""`python -m examples.kafka_mini`: run the failover scenario and print the recovery times."""

from examples.kafka_mini.driver import main

if __name__ == "__main__":
    main()
