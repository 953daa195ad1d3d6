"""A Kafka-style mini cluster on one machine, coordinated by Corral the way Kafka used ZooKeeper.

    python -m examples.kafka_mini          # from the repository root, with the venv's python

The driver (`driver.py`) starts three Corral members and three broker processes (`broker.py`), creates two
topics of six partitions, produces (`producer.py`) and consumes with a consumer group (`consumer.py`), then
kills -9 the controller broker and the Corral leader at the same moment and times each step of the recovery:
a new Raft leader, the dead broker's lease expiring, a new controller (`controller.py`) with epoch + 1, new
partition leaders, the producer's records acknowledged again, the consumer's next offset commit. Every
acknowledged record must still be readable, and no committed offset may be lost or go backwards.

Modules: `protocol.py` (key names, the brokers' HTTP messages, a client for them), `partition_log.py` (a
replica's in-memory log), `broker.py`, `controller.py`, `producer.py`, `consumer.py`, `processes.py` (the
local processes), `driver.py` (the scenario and its report).
"""
