"""Server-side egodriver sessions: what one runtime rollout has told the served policy so far.

A :class:`Session` keeps the camera set-up declared in ``start_session``, the newest frames of
each camera, the ego's pose history and the latest route, and turns them into the
:class:`~cordillera.policy.base.PolicyInput` a Cordillera policy expects (B = 1) at each
``drive``. A :class:`SessionTable` holds the sessions of a server: bounded in number, each
reaped when idle for too long (a runtime that vanished without ``close_session``).

Thread safety: the table has its own lock; each session has a lock its handlers hold while they
read or change it, so one session's calls serialise while different sessions run in parallel.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import grpc
import numpy as np
import numpy.typing as npt
import torch

from cordillera.policy.base import Policy, PolicyInput
from cordillera.policy.inputs import ROUTE_POINTS, ROUTE_SPACING_M
from cordillera.service.contract import (
    US_PER_S,
    DeclaredCamera,
    TimedPoses,
    from_frame,
    interpolate_poses,
    route_ahead,
    to_frame,
)
from cordillera.service.errors import ContractViolation, invalid, precondition

F64 = npt.NDArray[np.float64]

EGO_HISTORY_MAX = 256
"""Poses kept per session (25.6 s at 10 Hz): enough for any history a policy asks for."""


@dataclass(frozen=True)
class EgoAnchor:
    """The ego's pose at a decision, in the runtime's local frame (the plan's anchor)."""

    xyz_m: F64
    yaw_rad: float


class Session:
    """One runtime rollout served by one policy instance.

    Args:
        uuid: the runtime's session id.
        scene_id: the scene the runtime named (informational).
        cameras: the declared cameras by logical id.
        policy: this session's own policy instance (policies keep per-episode state).
        camera_names: the cameras the policy observes, in its order (empty: none).
        frames_kept: frames kept per camera.
    """

    def __init__(
        self,
        uuid: str,
        scene_id: str,
        cameras: Mapping[str, DeclaredCamera],
        policy: Policy,
        camera_names: tuple[str, ...],
        frames_kept: int,
    ) -> None:
        self.uuid = uuid
        self.scene_id = scene_id
        self.cameras = dict(cameras)
        self.policy = policy
        self.camera_names = camera_names
        self.lock = threading.Lock()
        self.last_active_s = time.monotonic()
        self.drive_count = 0
        self.last_drive_us: int | None = None
        self._t_us: deque[int] = deque(maxlen=EGO_HISTORY_MAX)
        self._pose: deque[tuple[float, float, float, float]] = deque(maxlen=EGO_HISTORY_MAX)
        # Measured (speed, accel, yaw rate) per pose; NaN where the runtime sent none.
        self._motion: deque[tuple[float, float, float]] = deque(maxlen=EGO_HISTORY_MAX)
        self._route_rig: F64 | None = None
        self._route_t_us = 0
        self._frames: dict[str, deque[tuple[int, npt.NDArray[np.uint8]]]] = {
            name: deque(maxlen=frames_kept) for name in self.cameras
        }

    # -- observations -------------------------------------------------------------------------

    def add_egomotion(self, poses: TimedPoses, motion: F64) -> int:
        """Append poses newer than the last one (a runtime may resend the boundary pose);
        ``motion`` is ``(N, 3)`` speed, acceleration, yaw rate (NaN: not measured). Returns
        how many were new."""
        last = self._t_us[-1] if self._t_us else None
        new = poses.timestamps_us > last if last is not None else np.ones(len(poses), bool)
        rows = np.concatenate(
            [poses.xyz_m, poses.yaw_rad[:, None], motion, poses.timestamps_us[:, None]], 1
        )[new]
        for x, y, z, yaw, v, a, w, t in rows.tolist():
            self._t_us.append(int(t))
            self._pose.append((x, y, z, yaw))
            self._motion.append((v, a, w))
        return int(new.sum())

    def set_route(self, points_rig_m: F64, timestamp_us: int) -> None:
        """The route ahead, in the rig frame at ``timestamp_us``."""
        self._route_rig = points_rig_m
        self._route_t_us = timestamp_us

    def add_frame(self, name: str, timestamp_us: int, rgb: npt.NDArray[np.uint8]) -> None:
        """Keep a decoded frame (already at the size the policy wants)."""
        frames = self._frames[name]
        if frames and timestamp_us < frames[-1][0]:
            raise precondition(
                f"camera {name!r}: frame at {timestamp_us} us is older than the last one "
                f"({frames[-1][0]} us)",
                "camera_image.frame_end_us",
            )
        frames.append((timestamp_us, rgb))

    @property
    def last_pose_us(self) -> int | None:
        """Time of the newest pose, None before the first."""
        return self._t_us[-1] if self._t_us else None

    # -- decision -----------------------------------------------------------------------------

    def _poses(self) -> TimedPoses:
        p = np.asarray(self._pose, np.float64)
        return TimedPoses(np.asarray(self._t_us, np.int64), p[:, :3], p[:, 3])

    def policy_input(
        self, time_now_us: int, history_steps: int, frames: int, stride_steps: int, dt_s: float
    ) -> tuple[PolicyInput, EgoAnchor]:
        """The policy's view at ``time_now_us`` and the ego pose the plan is anchored to.

        The ego history is sampled every ``dt_s`` back from now (padded with the oldest pose, as
        the simulator's input builder pads), the route is re-expressed in the ego frame now
        and resampled to Cordillera's layout (``ROUTE_POINTS`` points ``ROUTE_SPACING_M``
        apart ahead), and each camera gives ``frames`` frames ``stride_steps * dt_s`` apart.
        """
        if not self._t_us:
            raise precondition(
                "drive before any submit_egomotion_observation: no ego pose to plan from",
                "session_uuid",
            )
        poses = self._poses()
        step_us = round(dt_s * US_PER_S)
        back = time_now_us - step_us * np.arange(history_steps - 1, -1, -1, dtype=np.int64)
        hist_xyz, hist_yaw = interpolate_poses(poses, back, extrapolate=False)
        xy, yaw = hist_xyz[-1, :2], float(hist_yaw[-1])
        anchor = EgoAnchor(hist_xyz[-1].copy(), yaw)
        speed, accel, yaw_rate = self._motion_now(poses)

        if self._route_rig is not None and self._route_rig.shape[0]:
            rxyz, ryaw = interpolate_poses(
                poses, np.array([self._route_t_us], np.int64), extrapolate=False
            )
            local = from_frame(self._route_rig[:, :2], rxyz[0, :2], float(ryaw[0]))
            route = route_ahead(to_frame(local, xy, yaw), ROUTE_POINTS, ROUTE_SPACING_M)
        else:  # no route: straight ahead
            route = route_ahead(np.zeros((0, 2)), ROUTE_POINTS, ROUTE_SPACING_M)

        cameras = None
        if self.camera_names:
            cameras = torch.from_numpy(self._stack_frames(time_now_us, frames, stride_steps, dt_s))

        f32 = torch.float32
        inputs = PolicyInput(
            time_s=torch.tensor([time_now_us / US_PER_S], dtype=f32),
            ego_history_ego_m=torch.from_numpy(to_frame(hist_xyz[:, :2], xy, yaw)).to(f32)[None],
            ego_speed_mps=torch.tensor([speed], dtype=f32),
            ego_accel_mps2=torch.tensor([accel], dtype=f32),
            ego_yaw_rate_rps=torch.tensor([yaw_rate], dtype=f32),
            route_ego_m=torch.from_numpy(route).to(f32)[None],
            cameras=cameras,
            camera_names=self.camera_names,
        )
        return inputs, anchor

    def _motion_now(self, poses: TimedPoses) -> tuple[float, float, float]:
        """Speed, acceleration and yaw rate at the newest pose: as measured by the runtime,
        else by finite differences of the poses (0 with a single pose)."""
        measured = np.asarray(self._motion[-1], np.float64)
        n = len(poses)
        derived = np.zeros(3)
        if n >= 2:
            dt = np.diff(poses.timestamps_us[-3:]).astype(np.float64) / US_PER_S
            d = np.diff(poses.xyz_m[-3:, :2], axis=0)
            v = np.linalg.norm(d, axis=1) / dt
            dyaw = np.diff(np.unwrap(poses.yaw_rad[-2:]))[0]
            derived[0] = v[-1]
            derived[1] = (v[-1] - v[-2]) / dt[-1] if v.shape[0] == 2 else 0.0
            derived[2] = dyaw / dt[-1]
        out = np.where(np.isfinite(measured), measured, derived)
        return float(out[0]), float(out[1]), float(out[2])

    def _stack_frames(
        self, time_now_us: int, frames: int, stride_steps: int, dt_s: float
    ) -> npt.NDArray[np.uint8]:
        """``(1, C, F, H, W, 3)`` the policy's cameras, oldest first; before enough history
        exists the oldest frame fills the gap (as the simulator's input builder does)."""
        stride_us = round(stride_steps * dt_s * US_PER_S)
        want = time_now_us - stride_us * np.arange(frames - 1, -1, -1, dtype=np.int64)
        per_camera = []
        for name in self.camera_names:  # C cameras, not pixels
            kept = self._frames[name]
            if not kept:
                raise precondition(
                    f"drive at {time_now_us} us before any frame of camera {name!r}",
                    "session_uuid",
                )
            ts = np.fromiter((t for t, _ in kept), np.int64, len(kept))
            pick = np.clip(np.searchsorted(ts, want, side="right") - 1, 0, None)
            per_camera.append(np.stack([kept[int(i)][1] for i in pick]))
        return np.stack(per_camera)[None]


class SessionTable:
    """The sessions of one server: at most ``max_sessions``, reaped after ``idle_timeout_s``
    without a call."""

    def __init__(self, max_sessions: int, idle_timeout_s: float) -> None:
        self.max_sessions = max_sessions
        self.idle_timeout_s = idle_timeout_s
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def add(self, session: Session) -> None:
        with self._lock:
            if session.uuid in self._sessions:
                raise ContractViolation(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"session {session.uuid!r} is already open",
                    field="session_uuid",
                )
            if len(self._sessions) >= self.max_sessions:
                raise ContractViolation(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{len(self._sessions)} sessions are open, the server's limit; close one",
                )
            self._sessions[session.uuid] = session

    def get(self, uuid: str) -> Session:
        """The open session ``uuid`` (its idle clock restarted); ``NOT_FOUND`` otherwise."""
        if not uuid:
            raise invalid("empty session id", "session_uuid")
        with self._lock:
            session = self._sessions.get(uuid)
        if session is None:
            raise ContractViolation(
                grpc.StatusCode.NOT_FOUND,
                f"no open session {uuid[:80]!r} (never started, closed, or reaped when idle)",
                field="session_uuid",
            )
        session.last_active_s = time.monotonic()
        return session

    def pop(self, uuid: str) -> Session:
        session = self.get(uuid)
        with self._lock:
            self._sessions.pop(uuid, None)
        return session

    def discard(self, uuid: str) -> bool:
        """Drop ``uuid`` if open; True when it was."""
        with self._lock:
            return self._sessions.pop(uuid, None) is not None

    def expire(self) -> list[str]:
        """Drop the sessions idle for longer than ``idle_timeout_s``; their ids."""
        cutoff = time.monotonic() - self.idle_timeout_s
        with self._lock:
            gone = [u for u, s in self._sessions.items() if s.last_active_s < cutoff]
            for u in gone:
                del self._sessions[u]
        return gone

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._sessions))


__all__ = ["EGO_HISTORY_MAX", "EgoAnchor", "Session", "SessionTable"]
