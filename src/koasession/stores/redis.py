"""A Redis session store on redis-py's asyncio client (Redis, Redis Cluster, Valkey).

The default layout is koa-redis's, so a Koa service using koa-session + koa-redis and a Python
service using this store can share sessions: key = the session id as the middleware made it
(plus an optional ``key_prefix``), value = ``JSON.stringify(data)`` including ``_expire`` and
``_maxAge``, TTL = ceil(seconds) set with the write itself.

Writes are single atomic commands, which is what makes "no resurrection" hold even across many
application servers: an insert is ``SET NX`` (fails if the id exists) and an update of a loaded
session is ``SET XX`` (fails if a logout deleted it meanwhile).

Connections belong to an event loop, so a store made from a URL opens its client lazily, inside
the running loop, and keeps one client per loop: a store created at import time works under
successive test clients, per-test loops and server reloads. Every command the store sends is
safe to repeat, which is why one retry on a fresh connection is enabled for all of them.

A load or a save is one round trip (``GET``; ``SET ... XX``/``NX``), so the cost around it is
what remains, and the request path keeps it low: each store call runs in the caller's own task
under one deadline (the middleware's ``store_timeout``), rather than in tasks of its own (which
cost event-loop turns); the clients it opens have no per-socket-operation timeout (with one,
redis-py wraps every socket write in ``asyncio.wait_for``, before Python 3.12 another task);
and its single commands skip redis-py's pool checkout (see ``_Binding.execute``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import unquote, urlsplit

try:
    from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis, RedisCluster
    from redis.asyncio.connection import AbstractConnection, Connection, parse_url
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError, WatchError
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ModuleNotFoundError(
        "RedisStore needs redis-py, which is not installed: pip install 'koasession[redis]'",
        name="redis",
    ) from exc

from ..errors import ConfigurationError, SessionIdCollision, StoreError, check_flag
from ._common import (
    LoadedKeyContext,
    OwnerFunc,
    StoredSession,
    StoreOptionsMixin,
    WriteMode,
    dumps,
    loads,
    loads_value,
    merge_items,
    not_on_asyncio,
    touch_items,
    ttl_seconds,
    valid_id,
    write_mode,
)
from .base import MaxAge, SessionData

__all__ = ["RedisStore"]

_T = TypeVar("_T")
_C = TypeVar("_C", bound=AbstractConnection)
_P = ParamSpec("_P")

# redis-py's asyncio cluster client (seen with 8.1) can fail a burst of commands on fresh
# connections with "'NoneType' object has no attribute 'writelines'" while sending the
# CLIENT SETINFO handshake; skipping that purely informational handshake avoids the race.
# Newer redis-py spells this driver_info=None, older versions lib_name/lib_version=None.
_CLUSTER_HANDSHAKE_WORKAROUND: dict[str, Any] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(RedisCluster.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)

# The owner index lives under "<key_prefix>owner|<owner id>". '|' is outside the session id
# alphabet (see valid_id), so no session id can ever name an index key, or the reverse.
_OWNER_SEP = "owner|"

# Owner index members are scored by the session's expiry (ms), by the writing server's clock,
# and pruned this long after it. A server whose clock runs ahead by more could drop a session
# at most that much before it expires anyway, which is harmless.
_PRUNE_GRACE_MS = 1_000

#: Socket read and connect timeout (seconds) used until a middleware passes its own
#: ``store_timeout`` (see :meth:`RedisStore.use_store_timeout`).
DEFAULT_TIMEOUT = 5.0

#: Seconds a pooled connection may sit idle before it is checked with a PING on next use.
DEFAULT_HEALTH_CHECK_INTERVAL = 5.0


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


async def _get(b: _Binding, rkey: str) -> Any:
    return await b.execute("GET", rkey)


async def _ping(b: _Binding) -> bool:
    return bool(await b.client.ping())


if sys.version_info >= (3, 11):

    async def _within(seconds: float, call: Awaitable[_T]) -> _T:
        """``await call``, cancelled at ``seconds``: ``asyncio.TimeoutError`` then.

        ``asyncio.timeout`` runs it in the caller's task: no task of its own to schedule."""
        async with asyncio.timeout(seconds):
            return await call

else:  # pragma: no cover - Python 3.10 has no asyncio.timeout

    async def _within(seconds: float, call: Awaitable[_T]) -> _T:
        return await asyncio.wait_for(call, seconds)


#: What a write on a transport that already lost its connection raises instead of an
#: ``OSError`` (see :func:`_lost_write`): ``RuntimeError`` ("the handler is closed") from
#: uvloop, on every Python; ``TypeError`` or ``AttributeError`` from asyncio on Python 3.12,
#: and 3.13 before python/cpython#136234 was fixed (``writelines`` calls a callback that closing
#: the transport cleared, where ``write`` drops the data). redis-py takes none of them for a
#: connection error: it neither retries nor wraps them.
#: Option names other session libraries give their Redis stores, and what to use here.
_MISTAKEN_OPTIONS = {
    "prefix": "use key_prefix= for prefix=",
    "namespace": "use key_prefix= for namespace=",
    "ttl": "the lifetime is the middleware's max_age= (the store gets it with each call)",
    "expire": "the lifetime is the middleware's max_age= (the store gets it with each call)",
}

#: redis-py's timeout options: taken as given, and only a socket made at the first request
#: finds out that "5" (from a settings file), a timedelta or -1 is no timeout.
_TIMEOUT_OPTIONS = ("socket_timeout", "socket_connect_timeout")


def _check_timeouts(options: dict[str, Any]) -> None:
    for name in _TIMEOUT_OPTIONS:
        value = options.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigurationError(
                f"RedisStore: {name} must be a positive number of seconds or None; got {value!r}"
            )


_LOST_WRITE_ERRORS = (TypeError, AttributeError, RuntimeError)
#: What such an error becomes, whether the store's own connection class or its call caught it.
_LOST_WRITE_MESSAGE = "connection lost while writing"


def _lost_write(exc: BaseException) -> bool:
    """Whether ``exc`` (one of :data:`_LOST_WRITE_ERRORS`) is a write on a transport that is
    already closing: the network reset the connection, or another task is closing it (a Redis
    Cluster client does while it refreshes its nodes).

    Told apart by the state of the stream or transport the error was raised in (the innermost
    frame of either in the traceback: asyncio's transport, or the stream writer that called
    uvloop's), or by the attribute that was missing, never by the message: the same error
    anywhere else stays what it is.
    """
    if isinstance(exc, AttributeError) and exc.name == "writelines" and exc.obj is None:
        return True  # redis-py's writer, taken away by another task's disconnect() meanwhile
    transport = None
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, asyncio.BaseTransport):
            transport = owner
        elif isinstance(owner, asyncio.StreamWriter):
            transport = owner.transport
        tb = tb.tb_next
    return transport is not None and bool(transport.is_closing())


#: The guarded class of each connection class: one each, so that redis-py sees one class.
_GUARDED: dict[type[Any], type[Any]] = {}


def _guarded(base: type[_C]) -> type[_C]:
    """``base`` (redis-py's connection class for the URL) with a write on a lost connection
    raised as the ``ConnectionError`` it is (see :data:`_LOST_WRITE_ERRORS`), so that redis-py
    handles it as it handles a reset elsewhere: the standalone client reconnects and retries
    the command, the cluster client refreshes its nodes and retries."""
    if base in _GUARDED:
        return _GUARDED[base]
    if base in _GUARDED.values():
        return base

    class Guarded(base):  # type: ignore[valid-type,misc]
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            try:
                await super().send_packed_command(command, check_health)
            except _LOST_WRITE_ERRORS as exc:
                if not _lost_write(exc):
                    raise
                await self.disconnect(nowait=True)  # a no-op if redis-py's handler did it
                raise RedisConnectionError(_LOST_WRITE_MESSAGE) from exc

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    _GUARDED[base] = Guarded
    return Guarded  # pyright: ignore[reportReturnType]


def _guard(client: ConnectionPool | RedisCluster) -> None:
    """Make the connections of a pool or cluster client the store opened :func:`_guarded`
    ones."""
    if isinstance(client, RedisCluster):
        # The cluster client makes the connections of the nodes it discovers with these
        # keyword arguments (one dict, shared with its nodes manager), and its startup nodes
        # were made already.
        kwargs = client.connection_kwargs
        kwargs["connection_class"] = _guarded(kwargs.get("connection_class", Connection))
        for node in client.nodes_manager.startup_nodes.values():
            node.connection_class = _guarded(node.connection_class)
    else:
        client.connection_class = _guarded(client.connection_class)


def _default_retry() -> Retry:
    # One retry, on a connection error only, after at most 0.1 s: a connection that went stale
    # (server restarted, idle connection dropped) is replaced at once, while a server that is
    # really down fails fast. A timeout is not retried: the deadline is the caller's.
    return Retry(
        ExponentialWithJitterBackoff(cap=0.1, base=0.02),
        retries=1,
        supported_errors=(RedisConnectionError,),
    )


def _address_of_url(url: str) -> str:
    """``host:port`` or the socket path of a Redis URL, never its credentials."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return unquote(parts.path) or "(no path)"
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    return f"{host}:{port}"


def _address_of_client(client: Redis | RedisCluster) -> str:
    """Best-effort ``host:port`` (or socket path) of a client given to the store."""
    if isinstance(client, RedisCluster):
        node = client.get_default_node()
        return f"{node.host}:{node.port}" if node is not None else "a Redis Cluster"
    kwargs = getattr(client.connection_pool, "connection_kwargs", {})
    if kwargs.get("path"):
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


class _Binding:
    """The client and the concurrency limit a store uses inside one event loop, and the
    connections of its own that the store's single commands use (see :meth:`execute`)."""

    __slots__ = ("client", "idle", "limit", "loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None,
        client: Any,
        limit: asyncio.Semaphore | contextlib.nullcontext[None],
        *,
        own_connections: bool = False,
    ) -> None:
        self.loop = loop
        self.client = client
        self.limit = limit
        self.idle: list[AbstractConnection] | None = [] if own_connections else None

    async def execute(self, *args: str | int) -> Any:
        """Send one command and return its reply: raw (``OK`` is truthy, nil is ``None``).

        With connections of its own (a standalone client the store opened, within
        ``max_concurrency``), the command goes to an idle one of them, made by the client's
        pool, rather than through the client: redis-py's pool checkout (a lock, deprecation
        checks, observability hooks) costs more than the round trip's own Python work. The
        retry policy is the connection's own (see ``_default_retry``), as in the client. At
        most ``max_concurrency`` calls run at once in a loop, each using one connection, so
        there are never more connections than that.
        """
        idle = self.idle
        if idle is None:
            return await self.client.execute_command(*args)
        conn = idle.pop() if idle else self.client.connection_pool.make_connection()
        finished = False
        try:
            reply = await conn.retry.call_with_retry(
                lambda: _round_trip(conn, args), lambda error: conn.disconnect()
            )
            finished = True
            return reply
        finally:
            if not finished:
                # Cut short (an error, or cancelled at the deadline), it may be in the middle
                # of a reply or of its handshake: close it, and its next use reconnects.
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
            idle.append(conn)

    async def aclose(self) -> None:
        """Close the store's own connections, then the client's."""
        idle, self.idle = self.idle, None
        for conn in idle or ():
            await conn.disconnect()
        await self.client.aclose()


async def _round_trip(conn: AbstractConnection, args: tuple[str | int, ...]) -> Any:
    encoder = conn.encoder
    await conn.send_packed_command(_resp(args, encoder.encoding, encoder.encoding_errors))
    return await conn.read_response()


def _resp(args: tuple[str | int, ...], encoding: str, errors: str) -> bytes:
    """``args`` as a RESP array of bulk strings: the bytes redis-py's ``pack_command`` writes,
    in less than half its time (it takes any type; the store's arguments are str and int)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode(encoding, errors) if isinstance(arg, str) else b"%d" % arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


# A binding to no loop: asyncio.get_running_loop() never returns None, so the hot path's single
# identity check always misses it.
_UNBOUND = _Binding(None, None, contextlib.nullcontext())


class RedisStore(StoreOptionsMixin):
    """Session store on Redis (or Valkey), standalone or cluster.

    :param url_or_client: a ``redis://``/``rediss://``/``unix://`` URL, or a ready
        ``redis.asyncio.Redis`` / ``redis.asyncio.RedisCluster`` client (with or without
        ``decode_responses``). With a URL the store opens its connections lazily, in the event
        loop that uses them, one client per loop. A client passed in is used as is (so it must
        be used in the loop it belongs to) and is not closed by :meth:`close`.
    :param key_prefix: prepended to every key, to namespace sessions in a shared database.
    :param cluster: with a URL, connect with ``RedisCluster.from_url``.
    :param hash_ids: keep HMAC-SHA256(``hash_key``, id) as the key instead of the id, so a dump
        of the database cannot be replayed as cookies (this gives up koa-redis compatibility).
    :param owner: a function of the session data returning its owner (e.g. the user id);
        maintains an index per owner for :meth:`list_owner`, :meth:`revoke` and
        :meth:`destroy_owner`.
    :param max_concurrency: at most this many store operations in flight at once per event
        loop (others wait); ``None`` for no limit.
    :param client_options: passed to the connection pool when a URL is given, or to
        ``RedisCluster.from_url``. Every store call (the wait for a free slot and connection
        included) ends within the middleware's ``store_timeout``, or :data:`DEFAULT_TIMEOUT`
        when no middleware said, else fails with a :class:`~koasession.errors.StoreError`.
        Unless given here, the store sets: ``socket_connect_timeout`` of that timeout;
        ``health_check_interval`` of :data:`DEFAULT_HEALTH_CHECK_INTERVAL`; for a cluster,
        ``socket_timeout`` of that timeout too; standalone, ``retry``: one retry after a
        connection error, on a fresh connection, after a short backoff, so a server restart
        costs no request (a cluster client keeps redis-py's own retry policy), and a pool of
        ``max_concurrency`` connections for transactions, the owner index and commands sent
        through :attr:`client` (a blocking pool of 64, waiting at most that timeout for a free
        connection, when ``max_concurrency`` is ``None`` or the options set ``max_connections``
        or ``timeout``). The store's single commands (``GET``, ``SET``, ``DEL``) use as many
        connections of its own, made by that pool, when there is a ``max_concurrency``. A
        standalone client gets no ``socket_timeout``, since the call's deadline bounds its
        reads: commands sent through :attr:`client` by application code have none either,
        unless given here. Errors raised by the store are
        :class:`~koasession.errors.StoreError` naming the store and its :attr:`address`
        (``host:port`` or socket path), never a password.
    """

    #: ``host:port`` or the socket path of the server, for messages (never credentials).
    address: str

    def __init__(
        self,
        url_or_client: str | Redis | RedisCluster = "redis://127.0.0.1:6379",
        *,
        key_prefix: str = "",
        cluster: bool = False,
        hash_ids: bool = False,
        hash_key: str | bytes | None = None,
        owner: OwnerFunc | None = None,
        max_concurrency: int | None = 64,
        **client_options: Any,
    ) -> None:
        self._init_common(hash_ids=hash_ids, hash_key=hash_key, owner=owner)
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise ConfigurationError("max_concurrency must be a positive integer or None")
        # Bounds the operations in flight. redis-py's cluster client has no blocking pool:
        # past max_connections per node it fails ("MaxConnectionsError") instead of waiting,
        # so a burst of requests on one session would turn into errors.
        self._max_concurrency = max_concurrency
        check_flag("cluster", cluster)
        if not isinstance(key_prefix, str):
            raise ConfigurationError("key_prefix must be a string")
        self.key_prefix = key_prefix
        self._url: str | None = None
        self._pool_options: dict[str, Any] = {}
        self._given: Redis | RedisCluster | None = None
        self._cluster = cluster
        self._client_options = client_options
        self._timeout = DEFAULT_TIMEOUT
        self._secrets: tuple[str, ...] = ()
        if isinstance(url_or_client, str):
            scheme = url_or_client.partition("://")[0].lower()
            if scheme not in ("redis", "rediss", "unix") or (cluster and scheme == "unix"):
                raise ConfigurationError(
                    "RedisStore needs a redis://, rediss:// or unix:// URL "
                    "(redis:// or rediss:// for a cluster)"
                )
            database = urlsplit(url_or_client).path.strip("/")
            if scheme != "unix" and database and not database.isdigit():
                # redis-py ignores a path that is not a number: database 0, no namespace.
                raise ConfigurationError(
                    f"the path of a Redis URL is the database number (redis://host:6379/0), "
                    f"not {database!r}; for a namespace use key_prefix={database + ':'!r}"
                )
            try:
                url_options = parse_url(url_or_client)  # a bad URL fails here, not at first use
            except ValueError as exc:
                raise ConfigurationError(f"invalid Redis URL: {exc}") from None
            # What the pool will be given: the URL's query wins over keyword options in
            # redis-py's from_url.
            self._pool_options = {**client_options, **url_options}
            _check_timeouts(self._pool_options)
            self._url = url_or_client
            self.address = _address_of_url(url_or_client)
            password = urlsplit(url_or_client).password
            options_password = client_options.get("password")
            self._secrets = tuple(
                s
                for s in (password, unquote(password or ""), options_password)
                if isinstance(s, str) and s
            )
        elif isinstance(url_or_client, (Redis, RedisCluster)):
            if client_options or cluster:
                raise ConfigurationError("client options are only used with a URL")
            self._given = url_or_client
            self.address = _address_of_client(url_or_client)
        else:
            raise ConfigurationError("RedisStore needs a redis URL or a redis.asyncio client")
        self._deadline_holds = (
            self._url is not None
            and not cluster
            and (sys.version_info >= (3, 12) or not self._pool_options.get("socket_timeout"))
        )
        # The binding of the loop in use, and those of other loops that are still open.
        self._bound = _UNBOUND
        self._bindings: dict[asyncio.AbstractEventLoop, _Binding] = {}
        self._bindings_lock = threading.Lock()
        if self._url is not None:
            self._check_client_options()

    def _check_client_options(self) -> None:
        """Build now, with no I/O, what the first call in a loop builds: a misspelt client option
        (``prefix=`` for ``key_prefix=``), or a value redis-py refuses when it makes a
        connection (``protocol=4``), fails at start-up with redis-py's own reason, not at the
        first request that touches the store. (A cluster client checks its option names when
        made; the values reach each node's connections later.)"""
        try:
            client = self._open_client()
            if isinstance(client, Redis):  # a cluster client checks its options when made
                client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        # An unknown name is a TypeError; a bad value may be any of the others (protocol=4 is
        # redis-py's ConnectionError, a retry that is no Retry an AttributeError).
        except (TypeError, ValueError, AttributeError, RedisError) as exc:
            hint = "".join(
                f"; {_MISTAKEN_OPTIONS[name]}"
                for name in sorted(self._client_options)
                if name in _MISTAKEN_OPTIONS
            )
            reason = self._masked(f"{type(exc).__name__}: {exc}")
            raise ConfigurationError(
                f"RedisStore: redis-py refused the client options ({reason}); options other "
                f"than RedisStore's own go to redis-py's connection{hint}"
            ) from None

    def __repr__(self) -> str:
        kind = "cluster " if self._cluster else ""
        return f"RedisStore({kind}{self.address})"

    def use_store_timeout(self, timeout: float) -> None:
        """Bound every store call by ``timeout`` (the smallest one offered wins).

        The middleware calls this with its ``store_timeout`` (see :mod:`.base`), so a request
        that gives up on the store also frees its connection in time. It applies to the next
        call; socket timeouts given as client options still apply, and clients already open
        keep the connect timeout they were made with.
        """
        if timeout > 0:
            self._timeout = min(self._timeout, float(timeout))

    @property
    def call_deadline(self) -> float | None:
        """Seconds within which every call ends by itself (``StoreError`` at the deadline), or
        ``None`` when the store cannot promise it.

        The middleware then awaits a call directly, in the request's task, when this is within
        its ``store_timeout`` (see :func:`koasession.storeio.call`), instead of running it in a
        task of its own to stop waiting at the timeout. :meth:`_run` cancels each call at the
        store's timeout; that holds unless the client can lose the cancellation: before Python
        3.12, ``asyncio.wait_for`` returns a result that arrives together with the cancel and
        drops the cancel, and redis-py wraps socket writes in it whenever ``socket_timeout``
        is set, which it is for a cluster, for a client passed in (its owner's choice) and
        when the options say so.
        """
        return self._timeout if self._deadline_holds else None

    # -- per-loop clients ----------------------------------------------------------------------

    @property
    def client(self) -> Redis | RedisCluster:
        """The redis-py client of the running event loop (opened on first use)."""
        return self._binding().client  # type: ignore[no-any-return]

    def _binding(self) -> _Binding:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise not_on_asyncio(self) from None
        bound = self._bound
        if bound.loop is loop:
            return bound
        return self._bind(loop)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> _Binding:
        with self._bindings_lock:
            for old in [k for k in self._bindings if k.is_closed()]:
                # Its connections cannot be closed politely any more: awaiting on a closed
                # loop is impossible. Dropping the client lets the garbage collector close
                # the sockets.
                del self._bindings[old]
            binding = self._bindings.get(loop)
            if binding is None:
                limit: asyncio.Semaphore | contextlib.nullcontext[None] = (
                    asyncio.Semaphore(self._max_concurrency)
                    if self._max_concurrency is not None
                    else contextlib.nullcontext()
                )
                client = self._given if self._given is not None else self._open_client()
                # Connections of its own only where they are bounded (max_concurrency) and the
                # store made the client, so that it closes them.
                own = (
                    self._given is None and not self._cluster and self._max_concurrency is not None
                )
                binding = _Binding(loop, client, limit, own_connections=own)
                self._bindings[loop] = binding
            self._bound = binding
            return binding

    def _open_client(self) -> Redis | RedisCluster:
        assert self._url is not None
        timeouts: dict[str, Any] = {
            "socket_connect_timeout": self._timeout,
            "health_check_interval": DEFAULT_HEALTH_CHECK_INTERVAL,
        }
        if self._cluster:
            # redis-py's cluster client retries on socket timeouts itself: keep them.
            timeouts["socket_timeout"] = self._timeout
            options = {**_CLUSTER_HANDSHAKE_WORKAROUND, **timeouts, **self._client_options}
            cluster = RedisCluster.from_url(self._url, **options)
            _guard(cluster)
            return cluster
        # No socket_timeout (redis-py 8 sets 5 s unless told None): the deadline of _run bounds
        # each call as a whole, and with a socket_timeout redis-py would put asyncio.wait_for
        # around every socket write.
        options = {
            "retry": _default_retry(),
            "socket_timeout": None,
            **timeouts,
            **self._client_options,
        }
        if self._max_concurrency is not None and not (
            {"max_connections", "timeout"} & self._pool_options.keys()
        ):
            # At most max_concurrency calls are in flight in this loop and each holds one
            # connection at a time (released before its slot is), so a pool of that many
            # always has one free: no need for the blocking pool's lock and timer per checkout.
            pool: ConnectionPool = ConnectionPool.from_url(
                self._url, max_connections=self._max_concurrency, **options
            )
        else:
            # Nothing else bounds the connections: a burst of concurrent requests waits for one
            # instead of failing with "Too many connections" (within the call's deadline).
            options = {"max_connections": 64, "timeout": self._timeout, **options}
            pool = BlockingConnectionPool.from_url(self._url, **options)
        _guard(pool)
        return Redis.from_pool(pool)

    def _error(self, exc: BaseException) -> StoreError:
        """A :class:`StoreError` naming this store and its address, with no secret in it."""
        return StoreError(f"{self!r}: {self._masked(str(exc) or type(exc).__name__)}")

    def _masked(self, text: str) -> str:
        """``text`` with the passwords of the URL and the options replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # -- keys ----------------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return self.key_prefix + self._stored_key(key)

    def _owner_key(self, owner_id: str) -> str:
        return f"{self.key_prefix}{_OWNER_SEP}{owner_id}"

    @staticmethod
    def _ttl(max_age: float | None) -> int | None:
        ttl = ttl_seconds(max_age)
        if ttl is None:
            return None  # koa-redis: no TTL for a 'session' lifetime
        # koa-redis rounds up to whole seconds; Redis refuses EX 0.
        return max(1, math.ceil(ttl))

    # -- Store protocol ------------------------------------------------------------------------

    async def get(
        self,
        key: str,
        max_age: MaxAge | None = None,
        *,
        rolling: bool = False,
        ctx: object | None = None,
    ) -> SessionData | None:
        """Return the data saved under ``key``; ``None`` if missing or invalid (no server call
        for an invalid id)."""
        if not valid_id(key):
            return None
        raw = await self._run(_get, self._key(key))
        return None if raw is None else loads(raw)

    async def set(
        self,
        key: str,
        data: SessionData,
        max_age: float | None = None,
        *,
        rolling: bool = False,
        changed: bool = True,
        ctx: LoadedKeyContext | None = None,
    ) -> bool:
        """Save ``data`` under ``key`` for ``max_age`` seconds (``None``: no expiry).

        With a request context, a loaded id is only updated (``SET XX``; ``False`` when it was
        destroyed meanwhile) and a new id only inserted (``SET NX``; raises
        :class:`~koasession.errors.SessionIdCollision` when taken). Without one, upsert.
        """
        if not valid_id(key):
            raise ValueError("invalid session id")
        raw = dumps(data)
        return await self._run(self._set, key, data, raw, max_age, write_mode(key, ctx))

    async def touch(
        self,
        key: str,
        max_age: float | None = None,
        *,
        fields: Mapping[str, float],
        ctx: object | None = None,
    ) -> bool:
        """Extend the entry under ``key`` to ``max_age`` seconds and set the metadata
        ``fields`` in its value, keeping its data; ``False`` when the entry is gone.

        An optimistic transaction (``WATCH``, ``GET``, ``MULTI``/``SET XX``/``EXEC``, repeated
        when another write intervened) rather than a Lua script: the cjson of Redis's Lua turns
        an empty list into ``{}`` and rounds numbers to 14 digits, so a script re-encoding the
        value would alter data it was meant to leave alone.
        """
        items = touch_items(fields)
        if not valid_id(key):
            raise ValueError("invalid session id")
        return await self._run(self._patch, key, dict(items), [], max_age)

    async def merge(
        self,
        key: str,
        changed: Mapping[str, Any],
        deleted: Sequence[str],
        max_age: float | None = None,
        *,
        ctx: object | None = None,
    ) -> bool:
        """Set the keys ``changed`` and remove the keys ``deleted`` in the value under ``key``,
        keeping every other key as stored, and extend it to ``max_age`` seconds; ``False``
        when the entry is gone (nothing is created). The same optimistic transaction as
        :meth:`touch`."""
        items, names = merge_items(changed, deleted)
        if not valid_id(key):
            raise ValueError("invalid session id")
        patch = {name: loads_value(raw) for name, raw in items}
        return await self._run(self._patch, key, patch, names, max_age)

    async def destroy(self, key: str, *, ctx: object | None = None) -> None:
        """Remove the entry saved under ``key``; a missing or invalid id is not an error."""
        if not valid_id(key):
            return
        await self._run(self._destroy, key)

    async def _owner_destroy_all(self, owner: str) -> int:
        # A request of one of these sessions that is in flight cannot bring it back: its save is
        # an update (SET XX) and finds nothing.
        return await self._run(self._destroy_owner, owner)

    async def _owner_entries(self, owner: str) -> list[StoredSession]:
        # ``key`` is the stored key minus the prefix.
        return await self._run(self._list_owner, owner)

    async def _owner_destroy_one(self, stored_key: str, owner: str) -> bool:
        return await self._run(self._destroy_owned, self.key_prefix + stored_key, owner)

    # -- implementation ------------------------------------------------------------------------

    async def _run(
        self,
        operation: Callable[Concatenate[_Binding, _P], Awaitable[_T]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run ``operation`` with this loop's client, within the concurrency limit, and end it
        at the store's timeout (the wait for a free slot included).

        It runs in the caller's task: the cancellation at the deadline unwinds redis-py at
        once (it drops the connection without waiting), so nothing is left to detach.
        """
        bound = self._binding()
        timeout = self._timeout
        try:
            return await _within(timeout, self._limited(bound, operation, *args, **kwargs))
        except asyncio.TimeoutError:
            raise StoreError(f"{self!r}: timed out after {timeout} s") from None
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc
        except _LOST_WRITE_ERRORS as exc:
            # A client given to the store has no _guard: its lost connection still ends here.
            if not _lost_write(exc):
                raise
            raise self._error(RedisConnectionError(_LOST_WRITE_MESSAGE)) from exc

    @staticmethod
    async def _limited(
        bound: _Binding,
        operation: Callable[Concatenate[_Binding, _P], Awaitable[_T]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        async with bound.limit:
            return await operation(bound, *args, **kwargs)

    async def _set(
        self,
        b: _Binding,
        key: str,
        data: SessionData,
        raw: str,
        max_age: float | None,
        mode: WriteMode,
    ) -> bool:
        r: Redis | RedisCluster = b.client
        owner = self._owner_of(data)
        rkey = self._key(key)
        ttl = self._ttl(max_age)
        if owner is not None:
            # Index first: the index may briefly name a key that is not there (harmless, pruned
            # later), but never misses a live session that destroy_owner must find.
            await self._index_add(r, owner, rkey, ttl)
        track_old = self._owner is not None and mode != "insert"
        if track_old:
            result = await r.set(rkey, raw, ex=ttl, xx=mode == "update", get=True)
        else:
            # The usual save: one command, whose reply is truthy when it wrote.
            expiry = () if ttl is None else ("EX", ttl)
            condition = {"insert": ("NX",), "update": ("XX",), "upsert": ()}[mode]
            result = await b.execute("SET", rkey, raw, *expiry, *condition)
        if mode == "insert":
            if not result and _text(await b.execute("GET", rkey)) == raw:
                # A command is retried after a connection error (see _default_retry; Redis
                # Cluster clients do so often under bursts); when the first attempt had reached
                # the server, the retried SET NX finds our own value. Same random id and same
                # data (which carries a millisecond _expire) means it is our write, not a
                # collision.
                result = True
            if not result:
                if owner is not None:
                    await self._index_remove_if_absent(r, owner, rkey)
                raise SessionIdCollision("session id already exists")
            return True
        if track_old:
            # SET ... GET returns the previous value (None when there was none).
            previous = _text(result)
            if previous is None and mode == "update":
                if owner is not None:
                    await self._index_remove_if_absent(r, owner, rkey)
                return False
            old_owner = self._owner_of(loads(previous)) if previous is not None else None
            if old_owner is not None and old_owner != owner:
                await r.zrem(self._owner_key(old_owner), rkey)
            return True
        # SET XX without GET: None when the key was gone.
        return mode != "update" or bool(result)

    async def _patch(
        self,
        b: _Binding,
        key: str,
        changed: dict[str, Any],
        deleted: list[str],
        max_age: float | None,
    ) -> bool:
        r: Redis | RedisCluster = b.client
        rkey = self._key(key)
        ttl = self._ttl(max_age)
        async with r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(rkey)
                    previous = _text(await pipe.get(rkey))
                    data = None if previous is None else loads(previous)
                    if data is None:
                        return False
                    old_owner = self._owner_of(data)
                    for name in deleted:
                        data.pop(name, None)
                    data.update(changed)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(rkey, dumps(data), ex=ttl, xx=True)
                    (written,) = await pipe.execute()
                except WatchError:
                    continue  # another write landed first: apply the change to it
                break
        owner = self._owner_of(data)
        if written and owner is not None:
            await self._index_add(r, owner, rkey, ttl)  # the index entry lives as long
        if written and old_owner is not None and old_owner != owner:
            await r.zrem(self._owner_key(old_owner), rkey)
        return bool(written)

    async def _destroy(self, b: _Binding, key: str) -> None:
        rkey = self._key(key)
        if self._owner is None:
            await b.execute("DEL", rkey)
            return
        r: Redis | RedisCluster = b.client
        previous = _text(await r.getdel(rkey))
        old_owner = self._owner_of(loads(previous)) if previous is not None else None
        if old_owner is not None:
            await r.zrem(self._owner_key(old_owner), rkey)

    # -- owner index ---------------------------------------------------------------------------

    async def _index_add(
        self, r: Redis | RedisCluster, owner: str, rkey: str, ttl: int | None
    ) -> None:
        # A sorted set scored by expiry (ms): each write drops the members that expired, so the
        # index stays about as large as the owner's live sessions without a separate sweep.
        okey = self._owner_key(owner)
        now_ms = int(time.time() * 1000)
        pipe = r.pipeline(transaction=False)
        pipe.zadd(okey, {rkey: math.inf if ttl is None else now_ms + ttl * 1000})
        pipe.zremrangebyscore(okey, "-inf", f"({now_ms - _PRUNE_GRACE_MS}")
        if ttl is None:
            pipe.persist(okey)
        else:
            # The index must outlive its longest session: NX gives a fresh index a TTL, GT only
            # ever extends it (Redis/Valkey >= 7.0).
            pipe.expire(okey, ttl, nx=True)
            pipe.expire(okey, ttl, gt=True)
        await pipe.execute()

    async def _index_remove_if_absent(self, r: Redis | RedisCluster, owner: str, rkey: str) -> None:
        if not await r.exists(rkey):
            await r.zrem(self._owner_key(owner), rkey)

    async def _destroy_owner(self, b: _Binding, owner_id: str) -> int:
        r: Redis | RedisCluster = b.client
        okey = self._owner_key(owner_id)
        members = [m for m in map(_text, await r.zrange(okey, 0, -1)) if m]
        removed = 0
        for rkey in members:
            # One key per command: keys of different sessions live in different cluster slots.
            removed += int(await r.delete(rkey))
        if members:
            # ZREM only what was seen, so a session inserted meanwhile stays indexed.
            await r.zrem(okey, *members)
        return removed

    async def _destroy_owned(self, b: _Binding, rkey: str, owner: str) -> bool:
        r: Redis | RedisCluster = b.client
        raw = await r.get(rkey)
        if raw is None or self._owner_of(loads(raw)) != owner:
            return False
        removed = int(await r.delete(rkey))
        await r.zrem(self._owner_key(owner), rkey)
        return removed > 0

    async def _list_owner(self, b: _Binding, owner: str) -> list[StoredSession]:
        r: Redis | RedisCluster = b.client
        okey = self._owner_key(owner)
        members = sorted(m for m in map(_text, await r.zrange(okey, 0, -1)) if m)
        result = []
        stale = []
        now = time.time()
        for rkey in members:
            raw = await r.get(rkey)
            data = None if raw is None else loads(raw)
            if data is None or self._owner_of(data) != owner:
                stale.append(rkey)
                continue
            pttl = int(await r.pttl(rkey))
            expires = now + pttl / 1000 if pttl >= 0 else None
            result.append(StoredSession(rkey[len(self.key_prefix) :], data, expires))
        for rkey in stale:
            # Re-check: the session may have been (re)written since we read it.
            raw = await r.get(rkey)
            if raw is None or self._owner_of(loads(raw)) != owner:
                await r.zrem(okey, rkey)
        return result

    # -- lifecycle -----------------------------------------------------------------------------

    async def ping(self) -> bool:
        """Return whether the server answers (for health checks), within the store's timeout."""
        return await self._run(_ping)

    async def close(self) -> None:
        """Close the connections this store opened; a later call opens new ones.

        The client of the running loop is closed properly; clients of loops that are still
        running elsewhere are closed in their own loop; those of loops already closed are
        dropped. A client passed in is left open (its owner closes it).
        """
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        with self._bindings_lock:
            bindings = list(self._bindings.values())
            self._bindings.clear()
            self._bound = _UNBOUND
        if self._given is not None:
            return
        for binding in bindings:
            loop = binding.loop
            assert loop is not None
            if loop is current:
                await binding.aclose()
            elif loop.is_running() and not loop.is_closed():
                asyncio.run_coroutine_threadsafe(binding.aclose(), loop)
