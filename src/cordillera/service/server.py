"""``egodriver.EgodriverService`` serving any (servable) Cordillera policy.

The service's methods and message types are read from the contract's descriptor
(``carla_driver_interface._proto.egodriver_pb2``), never redeclared. Requests arrive as raw
bytes and are parsed here, so a malformed message is answered ``INVALID_ARGUMENT`` with the
parser's reason instead of gRPC's generic deserialisation failure; every handler raises
:class:`~cordillera.service.errors.ContractViolation` for a bad request and one wrapper turns
it into the status code, so a request can fail but never take the server down.

Sessions (:mod:`cordillera.service.session`) each get their own policy instance. One reaper
thread frees sessions idle for longer than ``session_idle_timeout_s`` (a runtime that vanished
without ``close_session``), and a ``drive`` whose client has gone by the time the plan is ready
frees its session at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc
import numpy as np
from carla_driver_interface._proto import common_pb2, egodriver_pb2
from carla_driver_interface.contract import (
    CONTRACT_REVISION,
    ContractError,
    cameras_to_revision,
    contract_metadata,
    read_revision,
)
from carla_driver_interface.protocol import ALPASIM_API_VERSION
from google.protobuf import symbol_database
from google.protobuf.message import DecodeError, Message
from PIL import Image

import cordillera
from cordillera.errors import ConfigError, CordilleraError, require_numbers
from cordillera.service.contract import (
    US_PER_S,
    DeclaredCamera,
    DriveDebug,
    TimedPoses,
    camera_from_proto,
    decode_image,
    from_frame,
    points_from_proto,
    trajectory_from_proto,
    trajectory_to_proto,
)
from cordillera.service.errors import ContractViolation, ServiceError, invalid, precondition
from cordillera.service.policies import PolicyFactory, check_servable
from cordillera.service.session import Session, SessionTable

log = logging.getLogger(__name__)

SERVICE_NAME = "egodriver.EgodriverService"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest message either way: carla-driver-interface's limit, so the peers agree (a camera
frame travels as one unary message)."""


@dataclass(frozen=True)
class ServeConfig:
    """How a policy server runs.

    Attributes:
        host: interface to bind; loopback unless told otherwise.
        port: TCP port (0: any free port, read back from :attr:`PolicyServer.port`).
        max_workers: handler threads (concurrent requests being worked on).
        max_concurrent_rpcs: requests admitted at once, queued included; more are refused
            with ``RESOURCE_EXHAUSTED``.
        max_sessions: open sessions at most; ``start_session`` beyond is ``RESOURCE_EXHAUSTED``.
        session_idle_timeout_s: a session without a call for this long is freed.
        max_message_bytes: largest request or response.
        plan_dt_s: spacing of the served policy's waypoints (Cordillera plans: 10 Hz).
    """

    host: str = "127.0.0.1"
    port: int = 50051
    max_workers: int = 16
    max_concurrent_rpcs: int = 1024
    max_sessions: int = 256
    session_idle_timeout_s: float = 300.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    plan_dt_s: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError(f"ServeConfig.host must be a non-empty string, got {self.host!r}")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"ServeConfig.port must be in [0, 65535], got {self.port!r}")
        counts = ("max_workers", "max_concurrent_rpcs", "max_sessions", "max_message_bytes")
        require_numbers("ServeConfig", self, counts, integer=True, minimum=1, inclusive=True)
        require_numbers("ServeConfig", self, ("session_idle_timeout_s", "plan_dt_s"))

    def grpc_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
        ]


Handler = Callable[[Any, grpc.ServicerContext], Message]


def service_methods() -> dict[str, tuple[type[Message], type[Message]]]:
    """Request and response classes of every ``EgodriverService`` method, from the contract's
    descriptor."""
    service = egodriver_pb2.DESCRIPTOR.services_by_name["EgodriverService"]
    db = symbol_database.Default()
    return {
        m.name: (db.GetSymbol(m.input_type.full_name), db.GetSymbol(m.output_type.full_name))
        for m in service.methods
    }


class EgodriverServicer:
    """The egodriver methods over a session table; one fresh policy per session.

    Args:
        make_policy: builds the served policy (checked servable here).
        policy_name: its name, reported by ``get_version`` and in every debug payload.
        config: the server's limits.
    """

    def __init__(self, make_policy: PolicyFactory, policy_name: str, config: ServeConfig) -> None:
        self.make_policy = make_policy
        self.policy_name = policy_name
        self.config = config
        probe = make_policy()
        self.camera_names = check_servable(probe, policy_name)
        req = probe.request
        self.history_steps = req.ego_history_steps
        cams = req.cameras
        self.frames = cams.frames if cams else 1
        self.stride_steps = cams.frame_stride_steps if cams else 1
        self.frame_size = (cams.width_px, cams.height_px) if cams else None
        self.sessions = SessionTable(config.max_sessions, config.session_idle_timeout_s)

    # -- lifecycle ----------------------------------------------------------------------------

    def get_version(self, request: common_pb2.Empty, context: grpc.ServicerContext) -> Message:
        context.send_initial_metadata(contract_metadata())
        version = common_pb2.VersionId(
            version_id=f"cordillera-{cordillera.__version__}-{self.policy_name}",
            git_hash="",
        )
        version.grpc_api_version.CopyFrom(ALPASIM_API_VERSION)
        return version

    def start_session(
        self, request: egodriver_pb2.DriveSessionRequest, context: grpc.ServicerContext
    ) -> Message:
        if not request.session_uuid:
            raise invalid("empty session id", "session_uuid")
        try:
            # A runtime that declares no revision is alpasim's own, which speaks revision 2.
            revision = read_revision(context.invocation_metadata(), CONTRACT_REVISION)
        except ContractError as e:
            raise precondition(str(e), "metadata") from None
        declared = cameras_to_revision(
            request.rollout_spec.vehicle.available_cameras, revision, CONTRACT_REVISION
        )
        cameras: dict[str, DeclaredCamera] = {}
        for i, proto in enumerate(declared):
            cam = camera_from_proto(proto, f"rollout_spec.vehicle.available_cameras[{i}]")
            if cam.logical_id in cameras:
                raise invalid(f"camera {cam.logical_id!r} declared twice", "available_cameras")
            cameras[cam.logical_id] = cam
        missing = [n for n in self.camera_names if n not in cameras]
        if missing:
            raise precondition(
                f"policy {self.policy_name!r} observes cameras {list(self.camera_names)}; the "
                f"session declares {sorted(cameras)}, without {missing}",
                "rollout_spec.vehicle.available_cameras",
            )
        policy = self.make_policy()
        policy.reset([])
        kept = (self.frames - 1) * self.stride_steps + 1 if self.camera_names else 1
        session = Session(
            request.session_uuid,
            request.debug_info.scene_id,
            cameras,
            policy,
            self.camera_names,
            kept,
        )
        self.sessions.add(session)
        log.info(
            "start_session %s scene=%r cameras=%s (%d open)",
            session.uuid,
            session.scene_id,
            sorted(cameras),
            len(self.sessions),
        )
        return common_pb2.SessionRequestStatus()

    def close_session(
        self, request: egodriver_pb2.DriveSessionCloseRequest, context: grpc.ServicerContext
    ) -> Message:
        session = self.sessions.pop(request.session_uuid)
        log.info("close_session %s after %d drives", session.uuid, session.drive_count)
        return common_pb2.Empty()

    # -- observations -------------------------------------------------------------------------

    def submit_image_observation(
        self, request: egodriver_pb2.RolloutCameraImage, context: grpc.ServicerContext
    ) -> Message:
        session = self.sessions.get(request.session_uuid)
        image = request.camera_image
        cam = session.cameras.get(image.logical_id)
        if cam is None:
            raise invalid(
                f"camera {image.logical_id[:80]!r} was not declared in start_session; declared: "
                f"{sorted(session.cameras)}",
                "camera_image.logical_id",
            )
        if image.frame_end_us < image.frame_start_us:
            raise invalid(
                f"frame ends ({image.frame_end_us}) before it starts ({image.frame_start_us})",
                "camera_image.frame_end_us",
            )
        # Decoded outside the session's lock: decoding is the expensive part.
        rgb = decode_image(image.image_bytes, cam.width_px, cam.height_px, "camera_image")
        if image.logical_id in session.camera_names:
            assert self.frame_size is not None
            if (cam.width_px, cam.height_px) != self.frame_size:
                resized = Image.fromarray(rgb).resize(self.frame_size, Image.Resampling.BILINEAR)
                rgb = np.asarray(resized, dtype=np.uint8)
            with session.lock:
                session.add_frame(image.logical_id, int(image.frame_end_us), rgb)
        return common_pb2.Empty()

    def submit_egomotion_observation(
        self, request: egodriver_pb2.RolloutEgoTrajectory, context: grpc.ServicerContext
    ) -> Message:
        session = self.sessions.get(request.session_uuid)
        poses = trajectory_from_proto(request.trajectory, "trajectory")
        if len(poses) == 0:
            raise invalid("no pose", "trajectory.poses")
        states = request.dynamic_states
        if states and len(states) != len(poses):
            raise invalid(
                f"{len(states)} dynamic states for {len(poses)} poses (send none or one each)",
                "dynamic_states",
            )
        if states:
            motion = np.fromiter(
                (
                    v
                    for s in states
                    for v in (s.linear_velocity.x, s.linear_acceleration.x, s.angular_velocity.z)
                ),
                np.float64,
                3 * len(states),
            ).reshape(-1, 3)
            if not np.isfinite(motion).all():
                raise invalid("a dynamic state is not finite", "dynamic_states")
        else:
            motion = np.full((len(poses), 3), np.nan)
        with session.lock:
            session.add_egomotion(poses, motion)
        return common_pb2.Empty()

    def submit_route(
        self, request: egodriver_pb2.RouteRequest, context: grpc.ServicerContext
    ) -> Message:
        session = self.sessions.get(request.session_uuid)
        points = points_from_proto(request.route.waypoints, "route.waypoints")
        with session.lock:
            # An unset stamp (0) means "now": the rig at the newest pose.
            stamp = int(request.route.timestamp_us) or (session.last_pose_us or 0)
            session.set_route(points, stamp)
        return common_pb2.Empty()

    def submit_recording_ground_truth(
        self, request: egodriver_pb2.GroundTruthRequest, context: grpc.ServicerContext
    ) -> Message:
        # Validated and acknowledged; a served Cordillera policy never sees ground truth.
        self.sessions.get(request.session_uuid)
        trajectory_from_proto(request.ground_truth.trajectory, "ground_truth.trajectory")
        return common_pb2.Empty()

    # -- decision -----------------------------------------------------------------------------

    def drive(self, request: egodriver_pb2.DriveRequest, context: grpc.ServicerContext) -> Message:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise ContractViolation(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed in queue")
        session = self.sessions.get(request.session_uuid)
        now, query = int(request.time_now_us), int(request.time_query_us)
        if query < now:
            raise invalid(f"time_query_us {query} is before time_now_us {now}", "time_query_us")
        dt_s = self.config.plan_dt_s
        with session.lock:
            if session.last_drive_us is not None and now < session.last_drive_us:
                raise precondition(
                    f"time_now_us {now} is before the previous drive's {session.last_drive_us}",
                    "time_now_us",
                )
            inputs, anchor = session.policy_input(
                now, self.history_steps, self.frames, self.stride_steps, dt_s
            )
            start = time.perf_counter()
            plan = session.policy.act(inputs)
            elapsed = time.perf_counter() - start
            session.last_drive_us = now
            session.drive_count += 1
        if plan.batch_size != 1:
            raise CordilleraError(f"policy returned {plan.batch_size} plans for one session")
        if not context.is_active():
            # The runtime cancelled or vanished while the policy thought: nobody will drive on.
            self.sessions.discard(session.uuid)
            log.warning("drive for %s: the client has gone; session freed", session.uuid)
            return egodriver_pb2.DriveResponse()

        wp = plan.waypoints_ego_m[0].double().numpy()  # (K, 2) ego frame
        k = wp.shape[0]
        local = from_frame(wp, anchor.xyz_m[:2], anchor.yaw_rad)
        yaw = anchor.yaw_rad + _headings(wp)
        times = now + np.round(np.arange(k + 1) * dt_s * US_PER_S).astype(np.int64)
        xyz = np.concatenate(
            [anchor.xyz_m[None], np.concatenate([local, np.full((k, 1), anchor.xyz_m[2])], 1)]
        )
        poses = TimedPoses(times, xyz, np.concatenate([[anchor.yaw_rad], yaw]))
        debug = DriveDebug.of_plan(plan, 0, self.policy_name, elapsed)
        return egodriver_pb2.DriveResponse(
            trajectory=trajectory_to_proto(poses),
            debug_info=egodriver_pb2.DriveResponse.DebugInfo(
                unstructured_debug_info=debug.to_bytes()
            ),
        )

    # -- plumbing -----------------------------------------------------------------------------

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """Every method, its request parsed from raw bytes by :meth:`_wrap`."""
        handlers = {}
        for name, (req_type, resp_type) in service_methods().items():
            handlers[name] = grpc.unary_unary_rpc_method_handler(
                self._wrap(name, req_type, getattr(self, name)),
                request_deserializer=None,
                response_serializer=resp_type.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    def _wrap(
        self, method: str, req_type: type[Message], fn: Handler
    ) -> Callable[[bytes, grpc.ServicerContext], Message]:
        full = req_type.DESCRIPTOR.full_name

        def handle(raw: bytes, context: grpc.ServicerContext) -> Message:
            try:
                request = req_type.FromString(raw)
            except (DecodeError, UnicodeDecodeError, ValueError, TypeError) as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{method}: malformed {full}: {e}")
            try:
                return fn(request, context)
            except ContractViolation as e:
                context.abort(e.code, f"{method}: {e}")
            except CordilleraError as e:
                log.error("%s failed: %s", method, e)
                context.abort(grpc.StatusCode.INTERNAL, f"{method}: {type(e).__name__}: {e}")
            except Exception as e:  # a policy bug must fail this call, not the server
                log.exception("%s failed", method)
                context.abort(grpc.StatusCode.INTERNAL, f"{method}: {type(e).__name__}: {e}")
            raise AssertionError("unreachable: context.abort raises")

        return handle


def _headings(waypoints: np.ndarray) -> np.ndarray:
    """``(K,)`` travel direction arriving at each waypoint (from the previous one, the first
    from the origin), in the waypoints' frame; standing still keeps the last heading (0 before
    any motion)."""
    d = np.diff(np.concatenate([np.zeros((1, 2)), waypoints], 0), axis=0)
    h = np.arctan2(d[:, 1], d[:, 0])
    moving = np.hypot(d[:, 0], d[:, 1]) > 1e-3
    last = np.maximum.accumulate(np.where(moving, np.arange(len(h)), -1))
    return np.where(last >= 0, h[np.maximum(last, 0)], 0.0)


class PolicyServer:
    """A running egodriver server; a context manager that stops it on exit.

    Attributes:
        servicer: the servicer (its ``sessions`` table is inspectable).
        port: the bound port.
        address: ``host:port``.
    """

    def __init__(self, make_policy: PolicyFactory, policy_name: str, config: ServeConfig) -> None:
        self.config = config
        self.servicer = EgodriverServicer(make_policy, policy_name, config)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="egodrv"),
            options=config.grpc_options(),
            maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        )
        self._server.add_generic_rpc_handlers((self.servicer.generic_handler(),))
        address = f"{config.host}:{config.port}"
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as e:
            raise ServiceError(f"cannot bind {address}: {e}") from None
        if self.port == 0:
            raise ServiceError(f"cannot bind {address} (in use, or not an interface here)")
        host = f"[{config.host}]" if ":" in config.host else config.host
        self.address = f"{host}:{self.port}"
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="egodrv-reaper", daemon=True)

    def start(self) -> PolicyServer:
        if self._reaper.is_alive():
            return self
        self._server.start()
        self._reaper.start()
        log.info("serving %s on %s", self.servicer.policy_name, self.address)
        return self

    def stop(self, grace_s: float = 1.0) -> None:
        self._stop.set()
        self._server.stop(grace_s).wait()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the server stops (or ``timeout_s``); True when it stopped."""
        return bool(self._server.wait_for_termination(timeout_s))

    def _reap(self) -> None:
        period = min(5.0, self.config.session_idle_timeout_s / 4)
        while not self._stop.wait(period):
            for uuid in self.servicer.sessions.expire():
                log.warning(
                    "session %s idle for %.0f s: freed", uuid, self.config.session_idle_timeout_s
                )

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    make_policy: PolicyFactory, policy_name: str, config: ServeConfig | None = None
) -> PolicyServer:
    """Start serving ``make_policy``'s policies (one per session); returns the running server.

    Use as ``with serve(factory, "route-follower", ServeConfig(port=0)) as server: ...``, or
    call :meth:`PolicyServer.wait` to serve until stopped.
    """
    return PolicyServer(make_policy, policy_name, config or ServeConfig()).start()


__all__ = [
    "MAX_MESSAGE_BYTES",
    "SERVICE_NAME",
    "EgodriverServicer",
    "PolicyServer",
    "ServeConfig",
    "serve",
    "service_methods",
]
