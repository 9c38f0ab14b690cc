"""Topic-creation job (compose `topics`, Helm hook): every registry topic, idempotently.

Partitions bound how many members of a consumer group consume in parallel, so create
them for the largest scale-out planned (adding partitions later moves patients' keys).
Replication and ``min.insync.replicas`` follow the cluster: 1/1 on one broker, 3/2 on three.
"""

from __future__ import annotations

import argparse
import contextlib
import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from carepulse.shared.kafka.security import kafka_client_security
from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--replication-factor", type=int, default=1)
    parser.add_argument("--min-insync-replicas", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    settings = Settings()
    security = kafka_client_security(settings)  # the same TLS/SASL as the services; a bad setup fails now
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=settings.kafka_servers, client_id="carepulse-topics",
                                     **security)
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)
    try:
        existing = set(admin.list_topics())
        configs = {"min.insync.replicas": str(args.min_insync_replicas)}
        wanted = [t for t in Topics.with_prefix(settings.topic_prefix).all() if t not in existing]
        for name in wanted:
            topic = NewTopic(name, args.partitions, args.replication_factor, topic_configs=configs)
            while True:
                try:
                    with contextlib.suppress(TopicAlreadyExistsError):  # another job raced us to it
                        admin.create_topics([topic])
                    break
                except KafkaError:
                    # e.g. INVALID_REPLICATION_FACTOR while the other brokers of a cluster still register
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(2.0)
        print(f"topics ready: {len(wanted)} created, {len(existing)} existed")
        return 0
    finally:
        admin.close()


if __name__ == "__main__":
    raise SystemExit(main())
