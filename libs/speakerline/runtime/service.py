"""What a service is to the runtime: its routes (handler, accepted event classes, limits) by handler name, and what
a handler knows about the delivery it handles (`Context`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from speakerline import events
from speakerline.events import Event
from speakerline.pubsub import EventPublisher
from speakerline.topology import Subscription, Topology


@dataclass(frozen=True)
class Context:
    """What a handler knows about the delivery it is handling, besides the event itself."""

    #: 1 for the first delivery; Pub/Sub counts attempts only on subscriptions with a dead-letter policy (all of
    #: speakerline's), and 1 is assumed where it does not say
    attempt: int
    #: whether this is the subscription's last attempt before the message is dead-lettered
    final_attempt: bool
    #: time.time() by which the handler should be done: past it the message may be redelivered elsewhere
    deadline: float
    message_id: str = ""
    subscription: str = ""


# A handler gets the event, its context and (bound with functools.partial) its deps, and returns every event it
# emits. A list is published when the handler returns; a generator's events are published as it yields them,
# which is how an event goes out before the long part of the work (diarization.started, progress).
Handler = Callable[[Any, Context], Iterable[Event[Any]]]
# Called on the last attempt of a message whose handler failed: the terminal event (job.failed), so that the job
# does not hang while the message waits in the dead-letter topic.
ExhaustedHook = Callable[[Any, Context, BaseException], Iterable[Event[Any]]]
Decoder = Callable[[bytes, Mapping[str, str]], Event[Any]]


@dataclass(frozen=True)
class Route:
    handler: Handler
    #: the event classes this handler takes; others arriving on its subscription are acknowledged and ignored
    accepts: tuple[type[Event[Any]], ...]
    on_exhausted: ExhaustedHook | None = None
    concurrency: int = 4
    max_lease_s: int = 3600
    #: event classes published best effort: a failed publish is logged and the handler goes on (a lost progress
    #: report must not throw away, and redo, hours of diarization); every other event's failure fails the delivery
    best_effort: tuple[type[Event[Any]], ...] = ()

    def takes(self, event: Event[Any]) -> bool:
        return any(event.TYPE == cls.TYPE for cls in self.accepts)

    def may_lose(self, event: Event[Any]) -> bool:
        return any(event.TYPE == cls.TYPE for cls in self.best_effort)


@dataclass
class ServiceDef:
    """A service as the runtime sees it: its name, its routes by handler name, its payload decoders."""

    name: str
    routes: Mapping[str, Route]
    publisher: EventPublisher
    topology: Topology
    decoders: Mapping[str, Decoder] = field(default_factory=dict)
    #: run once before taking work (e.g. load a model, so that a broken setup shows at start)
    warm_up: Callable[[], None] | None = None

    def decoder(self, sub: Subscription) -> Decoder:
        decoder: Decoder = events.parse_pubsub if sub.payload == "cloudevent" else self.decoders[sub.payload]
        return decoder

    def route(self, sub: Subscription) -> Route:
        return self.routes[sub.handler]
