"""Drive Cordillera's simulator with an external egodriver service.

:class:`RemoteDriverPolicy` is a :class:`~cordillera.policy.base.Policy` whose decisions come
from any server of ``egodriver.EgodriverService`` (an AlpaSim driver, a carla-driver-interface
policy, ``cordillera serve``). It plays the runtime's part of the contract, one session per
rollout: every step it sends each rollout's rendered camera frames, ego pose and dynamics, and
route, then asks ``drive`` for a plan, and turns the returned world-frame trajectory into a
:class:`~cordillera.policy.plan.Plan` (64 waypoints at the simulator's 10 Hz, ego frame) for the
simulator's controller to track. Calls of all rollouts are in flight together.

It asks for the simulator's state (``privileged``) only to know where each ego is in the world:
the contract speaks world-frame poses. The remote driver sees exactly what the contract carries.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import grpc
import numpy as np
import torch
from carla_driver_interface._proto import common_pb2, egodriver_pb2, egodriver_pb2_grpc
from carla_driver_interface.contract import (
    CONTRACT_REVISION,
    LEGACY_REVISION,
    ContractError,
    cameras_to_revision,
    contract_metadata,
    read_revision,
)

from cordillera.errors import ConfigError
from cordillera.policy.base import CameraRequest, ObservationRequest, PolicyInput
from cordillera.policy.baselines import require_privileged
from cordillera.policy.meta_fill import make_plan
from cordillera.policy.plan import PLAN_HORIZON, ChainOfCausation, Plan
from cordillera.scene.model import Scene
from cordillera.sensors.presets import get_rig
from cordillera.service.contract import (
    IMAGE_FORMATS,
    US_PER_S,
    DriveDebug,
    camera_to_proto,
    encode_image,
    interpolate_poses,
    points_to_proto,
    route_with_foot,
    to_frame,
    trajectory_from_proto,
)
from cordillera.service.errors import ContractViolation, RemoteDriverError
from cordillera.service.server import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)


def parse_driver_url(url: str) -> str:
    """The gRPC target ``host:port`` of ``grpc://HOST:PORT``; raises :class:`ConfigError`."""
    parts = urlsplit(url)
    if parts.scheme != "grpc" or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"--driver must be grpc://HOST:PORT, got {url!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or not 1 <= port <= 65535:
        raise ConfigError(f"--driver {url!r} needs a port in [1, 65535]")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


@dataclass(frozen=True)
class RemoteDriverConfig:
    """How the simulator talks to an external driver.

    Attributes:
        target: the server's ``host:port`` (see :func:`parse_driver_url`).
        send_cameras: render and send the camera ring every step.
        camera_rig: rig preset of the frames (``ring7``, ``ring6``, ``av2``).
        camera_width_px, camera_height_px: frame size.
        image_format: ``JPEG`` or ``PNG``; jpeg_quality: 1..95.
        timeout_s: deadline of every call but the first.
        connect_timeout_s: how long the first call (``get_version``) waits for the server.
        max_message_bytes: largest message either way (the server's limit).
        seed: ``random_seed`` of rollout b's session is ``seed + b``.
    """

    target: str
    send_cameras: bool = True
    camera_rig: str = "ring7"
    camera_width_px: int = 256
    camera_height_px: int = 144
    image_format: str = "JPEG"
    jpeg_quality: int = 90
    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.target, str) or ":" not in self.target:
            raise ConfigError(f"RemoteDriverConfig.target must be host:port, got {self.target!r}")
        if self.image_format.upper() not in IMAGE_FORMATS:
            raise ConfigError(
                f"RemoteDriverConfig.image_format must be one of {IMAGE_FORMATS}, "
                f"got {self.image_format!r}"
            )
        if not 1 <= self.jpeg_quality <= 95:
            raise ConfigError(
                f"RemoteDriverConfig.jpeg_quality {self.jpeg_quality!r} not in [1, 95]"
            )
        for name in ("timeout_s", "connect_timeout_s"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ConfigError(f"RemoteDriverConfig.{name} must be > 0, got {v!r}")


class RemoteDriverPolicy:
    """A :class:`Policy` backed by an external egodriver service (one session per rollout).

    Use as a context manager (or call :meth:`close`) so the sessions are closed.
    """

    def __init__(self, config: RemoteDriverConfig) -> None:
        self.config = config
        self._channel = grpc.insecure_channel(
            config.target,
            options=[
                ("grpc.max_send_message_length", config.max_message_bytes),
                ("grpc.max_receive_message_length", config.max_message_bytes),
            ],
        )
        self._stub = egodriver_pb2_grpc.EgodriverServiceStub(self._channel)
        try:
            version, call = self._stub.get_version.with_call(
                common_pb2.Empty(), timeout=config.connect_timeout_s, wait_for_ready=True
            )
            self.revision = read_revision(call.initial_metadata(), LEGACY_REVISION)
        except grpc.RpcError as e:
            self._channel.close()
            raise RemoteDriverError(
                f"driver {config.target}: get_version failed: {_status(e)}"
            ) from None
        except ContractError as e:
            self._channel.close()
            raise RemoteDriverError(f"driver {config.target}: {e}") from None
        self.version_id = version.version_id
        self.name = f"grpc:{version.version_id or config.target}"
        cams = (
            CameraRequest(config.camera_rig, config.camera_width_px, config.camera_height_px, 1, 1)
            if config.send_cameras
            else None
        )
        self.request = ObservationRequest(cameras=cams, ego_history_steps=1, privileged=True)
        self._sessions: list[str] = []
        self._terminated: list[bool] = []

    @staticmethod
    def connect(url: str, **options: Any) -> RemoteDriverPolicy:
        """A policy for ``grpc://HOST:PORT`` with :class:`RemoteDriverConfig` ``options``."""
        return RemoteDriverPolicy(RemoteDriverConfig(parse_driver_url(url), **options))

    # -- Policy -------------------------------------------------------------------------------

    def reset(self, scenes: Sequence[Scene]) -> None:
        """Close the previous sessions and open one per rollout (``scenes``: one per rollout)."""
        self._close_sessions()
        cfg = self.config
        requests = []
        for b, scene in enumerate(scenes):
            req = egodriver_pb2.DriveSessionRequest(
                session_uuid=f"cordillera-{uuid.uuid4()}", random_seed=cfg.seed + b
            )
            req.debug_info.scene_id = scene.scene_id
            if cfg.send_cameras:
                rig = get_rig(cfg.camera_rig, cfg.camera_width_px, cfg.camera_height_px, scene)
                cams = [camera_to_proto(c) for c in rig.cameras]
                req.rollout_spec.vehicle.available_cameras.extend(
                    cameras_to_revision(cams, CONTRACT_REVISION, self.revision)
                )
            requests.append(req)
        meta = contract_metadata(self.revision)
        self._sessions = [r.session_uuid for r in requests]
        self._terminated = [False] * len(requests)
        self._wait(
            [
                (
                    b,
                    "start_session",
                    self._stub.start_session.future(r, timeout=cfg.timeout_s, metadata=meta),
                )
                for b, r in enumerate(requests)
            ]
        )

    def act(self, inputs: PolicyInput) -> Plan:
        sim, state = require_privileged(inputs, self.name)
        b = inputs.batch_size
        if b != len(self._sessions):
            raise RemoteDriverError(
                f"{b} rollouts but {len(self._sessions)} sessions: reset() with one scene per "
                "rollout first"
            )
        rows = torch.arange(b, device=state.step.device)
        ego = sim.ego_index
        xy = state.xy_m[rows, ego].double().cpu().numpy()
        yaw = state.heading_rad[rows, ego].double().cpu().numpy()
        now_us = np.round(inputs.time_s.double().cpu().numpy() * US_PER_S).astype(np.int64)
        live = [r for r in range(b) if not self._terminated[r]]
        self._observe(inputs, live, xy, yaw, now_us)

        step_us = round(sim.dt_s * US_PER_S)
        drives = [
            (
                r,
                "drive",
                self._stub.drive.future(
                    egodriver_pb2.DriveRequest(
                        session_uuid=self._sessions[r],
                        time_now_us=int(now_us[r]),
                        time_query_us=int(now_us[r]) + step_us,
                    ),
                    timeout=self.config.timeout_s,
                ),
            )
            for r in live
        ]
        responses = dict(zip(live, self._wait(drives), strict=True))

        waypoints = np.zeros((b, PLAN_HORIZON, 2))  # a finished session holds still
        debug: list[DriveDebug | None] = [None] * b
        query = now_us[:, None] + step_us * np.arange(1, PLAN_HORIZON + 1, dtype=np.int64)
        for r, resp in responses.items():  # B rollouts; each conversion is vectorised
            if resp.terminate_session:
                log.info("driver ended session %s of rollout %d", self._sessions[r], r)
                self._terminated[r] = True
            try:
                poses = trajectory_from_proto(resp.trajectory, "drive.trajectory")
                debug[r] = DriveDebug.from_bytes(resp.debug_info.unstructured_debug_info)
            except ContractViolation as e:
                raise RemoteDriverError(
                    f"driver {self.config.target} answered rollout {r} with {e}"
                ) from None
            if len(poses) == 0:  # the contract's "hold"
                continue
            local, _ = interpolate_poses(poses, query[r], extrapolate=True)
            waypoints[r] = to_frame(local[:, :2], xy[r], float(yaw[r]))
        return self._plan(torch.from_numpy(waypoints).float(), sim.dt_s, debug)

    # -- helpers ------------------------------------------------------------------------------

    def _observe(
        self,
        inputs: PolicyInput,
        live: list[int],
        xy: np.ndarray,
        yaw: np.ndarray,
        now_us: np.ndarray,
    ) -> None:
        """Send every live rollout's pose, route and frames; wait until all are accepted."""
        cfg = self.config
        speed = inputs.ego_speed_mps.double().cpu().numpy()
        accel = inputs.ego_accel_mps2.double().cpu().numpy()
        yaw_rate = inputs.ego_yaw_rate_rps.double().cpu().numpy()
        route = inputs.route_ego_m.double().cpu().numpy()
        frames = (
            inputs.cameras[:, :, -1].cpu().numpy()
            if cfg.send_cameras and inputs.cameras is not None
            else None
        )
        calls = []
        for r in live:
            sid, t = self._sessions[r], int(now_us[r])
            half = 0.5 * float(yaw[r])
            ego = egodriver_pb2.RolloutEgoTrajectory(session_uuid=sid)
            ego.trajectory.poses.add(
                timestamp_us=t,
                pose=common_pb2.Pose(
                    vec=common_pb2.Vec3(x=float(xy[r, 0]), y=float(xy[r, 1]), z=0.0),
                    quat=common_pb2.Quat(w=math.cos(half), z=math.sin(half)),
                ),
            )
            ego.dynamic_states.add(
                linear_velocity=common_pb2.Vec3(x=float(speed[r])),
                linear_acceleration=common_pb2.Vec3(x=float(accel[r])),
                angular_velocity=common_pb2.Vec3(z=float(yaw_rate[r])),
            )
            calls.append(
                (r, "submit_egomotion_observation", self._call("submit_egomotion_observation", ego))
            )
            req = egodriver_pb2.RouteRequest(session_uuid=sid)
            req.route.timestamp_us = t
            req.route.waypoints.extend(points_to_proto(route_with_foot(route[r])))
            calls.append((r, "submit_route", self._call("submit_route", req)))
            if frames is not None:
                for c, name in enumerate(inputs.camera_names):
                    img = egodriver_pb2.RolloutCameraImage(session_uuid=sid)
                    img.camera_image.logical_id = name
                    img.camera_image.frame_start_us = t
                    img.camera_image.frame_end_us = t
                    img.camera_image.image_bytes = encode_image(
                        frames[r, c], cfg.image_format, cfg.jpeg_quality
                    )
                    calls.append(
                        (r, "submit_image_observation", self._call("submit_image_observation", img))
                    )
        self._wait(calls)

    def _call(self, method: str, request: Any) -> grpc.Future:
        return getattr(self._stub, method).future(request, timeout=self.config.timeout_s)

    def _wait(self, calls: list[tuple[int, str, grpc.Future]]) -> list[Any]:
        """The results of in-flight calls, in order; the first failure raises
        :class:`RemoteDriverError` naming the rollout, session and method."""
        out = []
        for r, method, future in calls:
            try:
                out.append(future.result())
            except grpc.RpcError as e:
                for _, _, f in calls:
                    f.cancel()
                raise RemoteDriverError(
                    f"driver {self.config.target}: {method} for rollout {r} (session "
                    f"{self._sessions[r] if r < len(self._sessions) else '?'}) failed: {_status(e)}"
                ) from None
        return out

    def _plan(self, waypoints: torch.Tensor, dt_s: float, debug: list[DriveDebug | None]) -> Plan:
        """The plans, with the driver's meta-actions and CoC where it sent Cordillera's debug
        payload, and meta-actions derived from the trajectory otherwise."""
        b = waypoints.shape[0]
        if all(d is not None for d in debug):  # labelling a trajectory is not free: skip it
            lon = torch.zeros(b, dtype=torch.int64)
            lat, lane = torch.zeros_like(lon), torch.full_like(lon, -1)
        else:
            derived = make_plan(waypoints, dt_s, None)
            lon, lat, lane = (
                t.clone() for t in (derived.longitudinal, derived.lateral, derived.lane)
            )
        coc: list[ChainOfCausation | None] = [None] * len(debug)
        for r, d in enumerate(debug):  # B rows
            if d is None:
                continue
            lon[r], lat[r] = int(d.longitudinal), int(d.lateral)
            lane[r] = int(d.lane) if d.lane is not None else -1
            coc[r] = d.coc
        return Plan(waypoints, lon, lat, lane, tuple(coc))

    def _close_sessions(self) -> None:
        calls = [
            self._stub.close_session.future(
                egodriver_pb2.DriveSessionCloseRequest(session_uuid=s),
                timeout=self.config.timeout_s,
            )
            for s in self._sessions
        ]
        for f in calls:
            try:
                f.result()
            except grpc.RpcError as e:  # reaped or already gone: nothing left to free
                log.info("close_session: %s", _status(e))
        self._sessions, self._terminated = [], []

    def close(self) -> None:
        """Close every open session and the channel."""
        try:
            self._close_sessions()
        finally:
            self._channel.close()

    def __enter__(self) -> RemoteDriverPolicy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _status(error: grpc.RpcError) -> str:
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    return f"{code.name if code is not None else 'UNKNOWN'}: {details}"


__all__ = ["RemoteDriverConfig", "RemoteDriverPolicy", "parse_driver_url"]
