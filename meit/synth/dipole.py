"""One cardiac dipole seen through twelve leads.

The heart is modelled as a single time-varying dipole in Frank coordinates (X: right→left,
Y: head→feet, Z: front→back). Leads I, II and V1–V6 are fixed linear projections of it (Dower's
inverse-transform coefficients); III, aVR, aVL and aVF are *derived* from I and II exactly as an
electrocardiograph does, after quantisation, so Einthoven's and Goldberger's identities hold in the
stored integers and every lead shows the same electrical axis.
"""

from __future__ import annotations

import numpy as np

#: Independent leads rendered from the dipole, in this order.
INDEPENDENT_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")

#: Dower inverse-transform coefficients: lead = coefficients · (X, Y, Z) in Frank's system.
DOWER = np.array(
    [
        [0.632, -0.235, 0.059],  # I
        [0.235, 1.066, -0.132],  # II
        [-0.515, 0.157, -0.917],  # V1
        [0.044, 0.164, -1.387],  # V2
        [0.882, 0.098, -1.277],  # V3
        [1.213, 0.127, -0.601],  # V4
        [1.125, 0.127, -0.086],  # V5
        [0.831, 0.076, 0.230],  # V6
    ]
)

#: Rows that turn (I, II, V1..V6) into the twelve canonical leads I, II, III, aVR, aVL, aVF, V1..V6.
_DERIVE = np.zeros((12, 8))
_DERIVE[0, 0] = 1.0
_DERIVE[1, 1] = 1.0
_DERIVE[2] = [-1.0, 1.0, 0, 0, 0, 0, 0, 0]  # III = II - I
_DERIVE[3] = [-0.5, -0.5, 0, 0, 0, 0, 0, 0]  # aVR = -(I + II) / 2
_DERIVE[4] = [1.0, -0.5, 0, 0, 0, 0, 0, 0]  # aVL = I - II / 2
_DERIVE[5] = [-0.5, 1.0, 0, 0, 0, 0, 0, 0]  # aVF = II - I / 2
_DERIVE[6:, 2:] = np.eye(6)

#: Lead vectors of all twelve canonical leads in Frank coordinates (12 × 3).
LEAD_VECTORS_12 = _DERIVE @ DOWER

ADC_GAIN = 1000  # digital units per mV, as in PTB-XL
_DIGITAL_MAX = 32767  # -32768 is wfdb's missing-sample marker


def project(dipole: np.ndarray) -> np.ndarray:
    """Project a 3 × T dipole onto the eight independent leads (8 × T, mV)."""
    return DOWER @ dipole


def derive_twelve(independent: np.ndarray) -> np.ndarray:
    """Float 12-lead signal from the eight independent leads (exact identities, no rounding)."""
    return _DERIVE @ independent


def rotation_z(angle_rad: float) -> np.ndarray:
    """Rotation about Frank's Z axis: turns the frontal-plane projection by ``angle_rad``.

    Positive angles turn towards +Y (feet), i.e. clockwise as the frontal plane is usually drawn,
    which increases the electrical axis in degrees.
    """
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def random_rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """A small random rotation (axis uniform on the sphere, angle up to ``max_deg``): patient anatomy."""
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(-max_deg, max_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def quantise_twelve(independent_mv: np.ndarray) -> np.ndarray:
    """Digital 12-lead int16 array (12 × T) from the eight independent leads in mV.

    I, II and V1–V6 are rounded to 1 µV; III = II − I is then exact, and aVR, aVL, aVF are the
    Goldberger combinations of the *stored* I and II, rounded so that each is within half a digital
    unit of its exact value and aVR + aVL + aVF = 0 exactly (aVR rounds halves up, aVL halves down,
    aVF is minus their sum).
    """
    d = np.rint(independent_mv * ADC_GAIN)
    np.clip(d, -_DIGITAL_MAX, _DIGITAL_MAX, out=d)
    d = d.astype(np.int32)
    i, ii = d[0], d[1]
    out = np.empty((12, d.shape[1]), dtype=np.int32)
    out[0] = i
    out[1] = ii
    np.subtract(ii, i, out=out[2])
    # aVR = -(I + II)/2 rounded half up: floor((1 - I - II) / 2); >> 1 is floor division by 2
    out[3] = (1 - i - ii) >> 1
    # aVL = I - II/2 rounded half down: -floor((II - 2I + 1) / 2)
    out[4] = -((ii - 2 * i + 1) >> 1)
    out[5] = -(out[3] + out[4])
    out[6:] = d[2:]
    np.clip(out, -_DIGITAL_MAX, _DIGITAL_MAX, out=out)
    return out.astype(np.int16)
