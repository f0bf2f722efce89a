"""What a worker process knows: its configuration and compiled topics, set once at start.

``livebrief work`` calls ``configure`` before RQ starts; forked work-horses inherit it. A job run in a
process nobody configured loads the configuration the usual way (``--config``/``LIVEBRIEF_CONFIG``/default).
"""

from __future__ import annotations

from dataclasses import dataclass

from livebrief.config import Config, WebhookConfig, check_webhooks, load_config
from livebrief.keys import Keys
from worker.classify import TopicSet, load_topics
from worker.records import cache_stories


@dataclass(frozen=True)
class Runtime:
    config: Config
    topics: TopicSet
    keys: Keys

    def webhook(self, webhook_id: str) -> WebhookConfig | None:
        return next((w for w in self.config.webhooks if w.id == webhook_id), None)


_current: Runtime | None = None


def configure(config: Config) -> Runtime:
    """Load the topics and check the webhooks against them (``ConfigError`` when one names an unknown topic
    or its ``secret_env`` is unset), then make this the process's runtime."""
    global _current
    topics = load_topics(config.topics_path)
    check_webhooks(config, topics.names)
    _current = Runtime(config=config, topics=topics, keys=Keys(config.prefix))
    cache_stories(config.worker.story_cache)
    return _current


def current() -> Runtime:
    return _current if _current is not None else configure(load_config())
