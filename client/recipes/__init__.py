"""Coordination recipes over KV, leases and watches (ZooKeeper/kazoo and etcd concurrency parity)."""

# election, controller, lock, semaphore, barrier, counter (one module each; `X as X` marks a re-export)
from corral.client.recipes._common import KeyLost as KeyLost
from corral.client.recipes.barrier import AsyncBarrier as AsyncBarrier
from corral.client.recipes.barrier import AsyncDoubleBarrier as AsyncDoubleBarrier
from corral.client.recipes.barrier import Barrier as Barrier
from corral.client.recipes.barrier import DoubleBarrier as DoubleBarrier
from corral.client.recipes.controller import AsyncControllerElection as AsyncControllerElection
from corral.client.recipes.controller import ControllerElection as ControllerElection
from corral.client.recipes.controller import FencedError as FencedError
from corral.client.recipes.counter import AsyncCounter as AsyncCounter
from corral.client.recipes.counter import Counter as Counter
from corral.client.recipes.counter import CounterContended as CounterContended
from corral.client.recipes.election import AsyncElection as AsyncElection
from corral.client.recipes.election import Election as Election
from corral.client.recipes.election import NotLeader as NotLeader
from corral.client.recipes.lock import AsyncLock as AsyncLock
from corral.client.recipes.lock import Lock as Lock
from corral.client.recipes.semaphore import AsyncSemaphore as AsyncSemaphore
from corral.client.recipes.semaphore import Semaphore as Semaphore

# isort: split
# Kafka metadata: broker registry, topics and partition states, partition router, consumer offsets
from corral.client.recipes._kafka import MetadataError as MetadataError
from corral.client.recipes._kafka import TopicPartition as TopicPartition
from corral.client.recipes.offsets import AsyncOffsetStore as AsyncOffsetStore
from corral.client.recipes.offsets import CommittedOffset as CommittedOffset
from corral.client.recipes.offsets import OffsetAndMetadata as OffsetAndMetadata
from corral.client.recipes.offsets import OffsetConflictError as OffsetConflictError
from corral.client.recipes.offsets import OffsetRewindError as OffsetRewindError
from corral.client.recipes.offsets import OffsetStore as OffsetStore
from corral.client.recipes.offsets import StaleGenerationError as StaleGenerationError
from corral.client.recipes.registry import AsyncBrokerRegistration as AsyncBrokerRegistration
from corral.client.recipes.registry import AsyncBrokerRegistry as AsyncBrokerRegistry
from corral.client.recipes.registry import BrokerAlreadyRegisteredError as BrokerAlreadyRegisteredError
from corral.client.recipes.registry import BrokerInfo as BrokerInfo
from corral.client.recipes.registry import BrokerRegistration as BrokerRegistration
from corral.client.recipes.registry import BrokerRegistry as BrokerRegistry
from corral.client.recipes.registry import ChangeKind as ChangeKind
from corral.client.recipes.registry import MembershipChange as MembershipChange
from corral.client.recipes.router import AsyncPartitionRouter as AsyncPartitionRouter
from corral.client.recipes.router import NoLeaderError as NoLeaderError
from corral.client.recipes.router import PartitionRouter as PartitionRouter
from corral.client.recipes.router import Route as Route
from corral.client.recipes.topics import NO_LEADER as NO_LEADER
from corral.client.recipes.topics import AsyncTopics as AsyncTopics
from corral.client.recipes.topics import PartitionConflictError as PartitionConflictError
from corral.client.recipes.topics import PartitionRecord as PartitionRecord
from corral.client.recipes.topics import PartitionState as PartitionState
from corral.client.recipes.topics import StaleControllerEpochError as StaleControllerEpochError
from corral.client.recipes.topics import TopicDescription as TopicDescription
from corral.client.recipes.topics import TopicExistsError as TopicExistsError
from corral.client.recipes.topics import TopicInfo as TopicInfo
from corral.client.recipes.topics import Topics as Topics
from corral.client.recipes.topics import UnknownPartitionError as UnknownPartitionError
