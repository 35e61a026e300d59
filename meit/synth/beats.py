"""Beat morphology as dipole loops: normal conduction, bundle-branch blocks, PVCs, ST injury.

Waves are defined in Frank coordinates, so a morphology choice (say, RBBB's late rightward-anterior
forces) shows up coherently in every lead: rsR' in V1, wide S in I and V6. Patient anatomy rotates and
scales the loops; findings change their shape, timing and axis. Template measurements (axis, QRS
voltage, ST shift per lead) are computed from the same waves, so the ground truth is what is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from meit.synth.dipole import LEAD_VECTORS_12, random_rotation, rotation_z
from meit.synth.waves import WaveSet, render

# (centre, half-width) as fractions of the QRS duration, and the dipole (mV, Frank X/Y/Z).
_NORMAL_QRS = (
    (0.14, 0.14, (-0.15, 0.05, -0.20)),  # septal forces: rightward, anterior -> q in I/V6, r in V1
    (0.45, 0.27, (1.20, 0.60, 0.50)),  # main left-ventricular forces
    (0.78, 0.22, (-0.30, -0.25, 0.30)),  # terminal basal forces: rightward, superior, posterior
)
_LBBB_QRS = (  # no septal q; slow leftward-posterior activation, broad notched R in I/V6, QS in V1
    (0.20, 0.20, (0.35, 0.10, 0.35)),
    (0.50, 0.30, (1.00, 0.15, 1.10)),
    (0.80, 0.20, (0.90, -0.15, 0.50)),
)
_RBBB_QRS = (  # normal start, then slow rightward-anterior forces: rsR' in V1, wide S in I/V6
    (0.08, 0.08, (-0.12, 0.05, -0.18)),
    (0.30, 0.22, (1.10, 0.55, 0.40)),
    (0.72, 0.28, (-0.55, -0.05, -0.60)),
)
_T_VECTOR = {
    "normal": (0.35, 0.25, -0.15),
    "lbbb": (-0.40, -0.10, -0.45),  # discordant
    "rbbb": (0.30, 0.20, 0.35),  # opposite the terminal forces: T inverted in V1-V2
}
_ST_SECONDARY = {"lbbb": (-0.12, -0.03, -0.16)}  # discordant ST in LBBB (not an ST finding)
_P_WAVES = (
    (0.35, 0.35, (0.03, 0.12, -0.06)),  # right atrium: inferior, anterior
    (0.62, 0.38, (0.12, 0.06, 0.07)),  # left atrium: leftward, posterior
)
#: ST-injury directions (unit vectors get scaled so the most affected lead shows the chosen shift).
ST_TERRITORIES = {
    "elevation": {
        "anterior": (0.0, 0.0, -1.0),
        "inferior": (0.0, 1.0, 0.1),
        "lateral": (1.0, -0.25, 0.1),
    },
    "depression": {
        "lateral": (-0.75, -0.55, 0.3),
        "anterior": (0.0, 0.0, 1.0),
    },
}
LIMB = slice(0, 6)
PRECORDIAL = slice(6, 12)


@dataclass(frozen=True)
class Anatomy:
    """Per-patient traits that stay the same across that patient's records."""

    rotation: np.ndarray  # 3 × 3: heart orientation in the chest
    qrs_scale: float
    t_scale: float
    p_scale: float
    jitter: np.ndarray  # (3, 3) additive perturbation of the three normal QRS vectors
    pr_s: float
    qrs_s: float
    qtc_s: float
    axis_deg: float


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw a plausible adult heart: orientation, voltages and intervals."""
    return Anatomy(
        rotation=random_rotation(rng, 15.0),
        qrs_scale=float(rng.uniform(0.75, 1.35)),
        t_scale=float(rng.uniform(0.7, 1.3)),
        p_scale=float(rng.uniform(0.8, 1.3)),
        jitter=rng.normal(0.0, 0.08, size=(3, 3)),
        pr_s=float(rng.uniform(0.125, 0.185)),
        qrs_s=float(rng.uniform(0.076, 0.104)),
        qtc_s=float(rng.uniform(0.385, 0.440)),
        axis_deg=float(rng.uniform(-15.0, 75.0)),
    )


@dataclass(frozen=True)
class Morphology:
    """One record's beat shapes. QRS/ST-T times are relative to QRS onset, P times to P onset."""

    qrs: WaveSet
    stt: WaveSet  # drawn for the reference QT; stretched about the J point beat by beat
    p: WaveSet
    qrs_s: float
    pr_s: float
    qt_ref_s: float
    rr_ref_s: float
    pvc_qrs: WaveSet
    pvc_stt: WaveSet
    pvc_qrs_s: float
    pvc_qt_s: float
    axis_deg: float
    qrs_amp_limb_mv: float
    qrs_amp_precordial_mv: float
    qrs_amp_mv: np.ndarray  # (12,) peak-to-peak QRS per canonical lead
    st_shift_mv: np.ndarray  # (12,) ST deviation per canonical lead from the injury current
    st_territory: str | None


def _bumps(spec: tuple, duration: float, vectors: np.ndarray | None = None) -> WaveSet:
    centre = np.array([s[0] for s in spec]) * duration
    half = np.array([s[1] for s in spec]) * duration
    vec = np.array([s[2] for s in spec], dtype=float) if vectors is None else vectors
    return WaveSet(centre - half, half, np.zeros(len(spec)), half, vec)


def _area(waves: WaveSet) -> np.ndarray:
    """Time integral of a wave set's dipole (mV·s), exact for raised-cosine pulses."""
    weight = 0.5 * (waves.rise + waves.fall) + waves.plateau
    return weight @ waves.vector


def frontal_axis(waves: WaveSet) -> float:
    """Electrical axis (degrees) from the net QRS area in leads I and aVF, as a cardiologist reads it."""
    area = LEAD_VECTORS_12 @ _area(waves)
    return float(np.degrees(np.arctan2(area[5], area[0])))


def _rotate(waves: WaveSet, rot: np.ndarray) -> WaveSet:
    return WaveSet(waves.start, waves.rise, waves.plateau, waves.fall, waves.vector @ rot.T)


def _scaled(waves: WaveSet, factor: float) -> WaveSet:
    return WaveSet(waves.start, waves.rise, waves.plateau, waves.fall, waves.vector * factor)


def _steer_axis(qrs: WaveSet, target_deg: float) -> tuple[WaveSet, float]:
    """Rotate the QRS loop about Z until leads I/aVF read ``target_deg``; returns total rotation."""
    total = 0.0
    for _ in range(6):
        error = (target_deg - frontal_axis(qrs) + 180.0) % 360.0 - 180.0
        if abs(error) < 0.5:
            break
        qrs = _rotate(qrs, rotation_z(np.deg2rad(error)))
        total += error
    return qrs, total


def qrs_amplitudes(qrs: WaveSet, duration: float) -> np.ndarray:
    """Peak-to-peak QRS amplitude per canonical lead (mV), from a 2 kHz render of the template."""
    n = int(np.ceil(duration * 2000)) + 2
    dipole = render(qrs, n, 2000.0)
    leads = LEAD_VECTORS_12 @ dipole
    return leads.max(axis=1) - leads.min(axis=1)


def _stt_waves(
    qrs_s: float, qt_s: float, t_vec: np.ndarray, st_vec: np.ndarray, rng: np.random.Generator
) -> WaveSet:
    """ST segment plus an asymmetric T wave (slow rise, faster fall) ending at QT."""
    t_start = qrs_s + rng.uniform(0.22, 0.38) * (qt_s - qrs_s)
    span = qt_s - t_start
    rise, fall = 0.62 * span, 0.38 * span
    starts, rises, plateaus, falls, vecs = [t_start], [rise], [0.0], [fall], [t_vec]
    if np.any(st_vec):
        # injury current: ramps in across the J point, holds through the ST segment, fades with T
        on = qrs_s - 0.012
        starts.append(on)
        rises.append(0.02)
        plateaus.append(max(t_start + rise - on - 0.02, 0.0))
        falls.append(fall)
        vecs.append(st_vec)
    return WaveSet(np.array(starts), np.array(rises), np.array(plateaus), np.array(falls), np.array(vecs))


def _conduction(findings: tuple[str, ...]) -> str:
    if "lbbb" in findings:
        return "lbbb"
    if "rbbb" in findings:
        return "rbbb"
    return "normal"


def build_morphology(
    anatomy: Anatomy, findings: tuple[str, ...], rr_ref_s: float, rng: np.random.Generator
) -> Morphology:
    """Shape one record's beats from the patient's anatomy and the record's findings."""
    kind = _conduction(findings)
    rot = anatomy.rotation
    if kind == "lbbb":
        qrs_s, spec = float(rng.uniform(0.128, 0.170)), _LBBB_QRS
    elif kind == "rbbb":
        qrs_s, spec = float(rng.uniform(0.124, 0.156)), _RBBB_QRS
    else:
        qrs_s, spec = anatomy.qrs_s, _NORMAL_QRS
    vectors = np.array([s[2] for s in spec], dtype=float)
    vectors = vectors + (anatomy.jitter if kind == "normal" else 0.5 * anatomy.jitter)
    qrs = _rotate(_bumps(spec, qrs_s, vectors * anatomy.qrs_scale), rot)

    if "lad" in findings:
        target = float(rng.uniform(-85.0, -48.0))
    elif "rad" in findings:
        target = float(rng.uniform(100.0, 150.0))
    elif kind == "lbbb":
        target = float(rng.uniform(-10.0, 50.0))
    else:
        target = anatomy.axis_deg
    qrs, turned = _steer_axis(qrs, target)

    t_vec = np.array(_T_VECTOR[kind]) * anatomy.t_scale + rng.normal(0.0, 0.03, 3)
    t_vec = rotation_z(np.deg2rad(0.8 * turned)) @ (rot @ t_vec)  # QRS-T angle stays physiological

    amps = qrs_amplitudes(qrs, qrs_s)
    limb, prec = float(amps[LIMB].max()), float(amps[PRECORDIAL].max())
    if "low_voltage" in findings:
        factor = min(rng.uniform(0.28, 0.45) / limb, rng.uniform(0.55, 0.9) / prec)
        t_vec = t_vec * min(1.0, 1.3 * factor)
    else:
        # clear of the low-voltage criteria, and a QRS in lead II that stands out from P and T
        factor = max(1.0, 0.65 / limb, 1.2 / prec, 0.7 / float(amps[1]))
        if prec * factor > 4.0:  # keep giant voltages out of records that are not meant to have them
            factor = 4.0 / prec
    qrs = _scaled(qrs, factor)
    amps = amps * factor
    # in lead II (the rhythm strip) T stays under half and P under a quarter of the QRS, as usual
    t_vec = t_vec * min(1.0, 0.45 * float(amps[1]) / max(abs(float(LEAD_VECTORS_12[1] @ t_vec)), 1e-6))

    st_vec = np.array(_ST_SECONDARY.get(kind, (0.0, 0.0, 0.0))) @ rot.T
    territory: str | None = None
    injury = np.zeros(3)
    for direction, finding in (("elevation", "st_elevation"), ("depression", "st_depression")):
        if finding in findings:
            options = sorted(ST_TERRITORIES[direction])
            territory = options[int(rng.integers(len(options)))]
            unit = np.array(ST_TERRITORIES[direction][territory], dtype=float)
            unit /= np.linalg.norm(unit)
            reach = LEAD_VECTORS_12 @ unit
            peak = reach.max() if direction == "elevation" else -reach.min()
            size = rng.uniform(0.15, 0.35) if direction == "elevation" else rng.uniform(0.12, 0.25)
            injury = unit * size / peak
    st_vec = st_vec + injury

    qt_ref = anatomy.qtc_s * np.sqrt(rr_ref_s) + (qrs_s - anatomy.qrs_s) * 0.6
    stt = _stt_waves(qrs_s, qt_ref, t_vec, st_vec, rng)

    pr_s = float(rng.uniform(0.21, 0.32)) if "avb1" in findings else anatomy.pr_s
    p_dur = float(rng.uniform(0.085, 0.11))
    p_vectors = np.array([s[2] for s in _P_WAVES]) * anatomy.p_scale * min(1.0, 1.5 * factor)
    p = _rotate(_bumps(_P_WAVES, p_dur, p_vectors), rot)
    p_peak = float(np.abs(LEAD_VECTORS_12[1] @ render(p, int(p_dur * 1000) + 2, 1000.0)).max())
    p = _scaled(p, min(1.0, 0.25 * float(amps[1]) / max(p_peak, 1e-6)))

    pvc_qrs, pvc_stt, pvc_qrs_s, pvc_qt = _pvc(rng, qt_ref)
    return Morphology(
        qrs=qrs, stt=stt, p=p, qrs_s=qrs_s, pr_s=pr_s, qt_ref_s=float(qt_ref), rr_ref_s=rr_ref_s,
        pvc_qrs=pvc_qrs, pvc_stt=pvc_stt, pvc_qrs_s=pvc_qrs_s, pvc_qt_s=pvc_qt,
        axis_deg=frontal_axis(qrs), qrs_amp_limb_mv=float(amps[LIMB].max()),
        qrs_amp_precordial_mv=float(amps[PRECORDIAL].max()), qrs_amp_mv=amps,
        st_shift_mv=LEAD_VECTORS_12 @ injury, st_territory=territory,
    )


def _pvc(rng: np.random.Generator, qt_ref: float) -> tuple[WaveSet, WaveSet, float, float]:
    """A unifocal ventricular ectopic beat: wide, large, with a discordant T.

    The focus is random among those whose beats point inferiorly (large and upright in II, III and
    aVF), as for outflow-tract PVCs, the commonest kind; other directions are redrawn.
    """
    qrs_s = float(rng.uniform(0.135, 0.18))
    for _ in range(100):
        u1 = rng.standard_normal(3)
        u1 /= np.linalg.norm(u1)
        if LEAD_VECTORS_12[1] @ u1 >= 0.5:
            break
    u2 = u1 + rng.normal(0.0, 0.6, 3)
    u2 /= np.linalg.norm(u2)
    amp = rng.uniform(1.2, 2.2)
    vectors = np.stack([u1 * amp * 0.8, u2 * amp])
    qrs = _bumps(((0.3, 0.3, None), (0.65, 0.35, None)), qrs_s, vectors)
    mean = u1 + u2
    t_vec = -mean / max(float(np.linalg.norm(mean)), 1e-6) * rng.uniform(0.35, 0.6)
    # as for conducted beats, T in lead II stays under half of the QRS there
    ii = float(qrs_amplitudes(qrs, qrs_s)[1])
    t_vec = t_vec * min(1.0, 0.45 * ii / max(abs(float(LEAD_VECTORS_12[1] @ t_vec)), 1e-6))
    qt = qt_ref + 0.04
    stt = _stt_waves(qrs_s, qt, t_vec, np.zeros(3), rng)
    return qrs, stt, qrs_s, float(qt)
