"""Steady-state truth of the default plant: y = f(u, d, h) (PLANT.md, "Steady-state truth").

Closed form and vectorised: every input may be a scalar or an array, all are broadcast
together and every output has the broadcast shape. Two CSTR oxidisers (one quadratic
root each), an equivalent vacuum flash, and the molar yield balance. No global state:
all constants live in the frozen `PlantParameters`, whose `version_hash()` is stored
with every generated dataset so a history can be traced to the physics that made it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

R_GAS = 8.314  # J/mol/K
MW_CHP, MW_DMBA, MW_AP, MW_CUMENE, MW_PHENOL = 152.19, 136.19, 120.15, 120.19, 94.11

SETPOINTS = (
    "ox1_temperature",
    "ox2_temperature",
    "ox1_offgas_o2",
    "ox2_offgas_o2",
    "oxidation_ph",
    "evaporator_temperature",
    "evaporator_pressure",
)
DISTURBANCES = (
    "cumene_feed",
    "ox1_level",
    "ox2_level",
    "feed_inhibitor",
    "feed_chp",
    "cooling_water_temperature",
)
HIDDEN = ("chi", "xi_sp", "xi_ev")
INPUTS = SETPOINTS + DISTURBANCES + HIDDEN

# The measured outputs of the truth (tags of the history); `steady_state` returns a few
# diagnostics besides (selectivity, ox1_dmba, ...), which are not tags.
OUTPUTS = (
    "ox1_chp",
    "ox2_chp",
    "concentrated_chp",
    "yield",
    "ox1_air_flow",
    "ox2_air_flow",
    "ox2_dmba",
    "ox2_ap",
    "evaporator_steam_temperature",
    "phenol_production",
)

NOMINAL_DISTURBANCES = {
    "cumene_feed": 215.0,
    "ox1_level": 80.0,
    "ox2_level": 80.0,
    "feed_inhibitor": 15.0,
    "feed_chp": 0.5,
    "cooling_water_temperature": 26.0,
}
NOMINAL_HIDDEN = {"chi": 1.0, "xi_sp": 1.0, "xi_ev": 1.0}
OPERATOR_BASELINE = {
    "ox1_temperature": 106.0,
    "ox2_temperature": 98.0,
    "ox1_offgas_o2": 3.5,
    "ox2_offgas_o2": 3.5,
    "oxidation_ph": 7.3,
    "evaporator_temperature": 82.0,
    "evaporator_pressure": 2.8,
}


@dataclass(frozen=True)
class PlantParameters:
    """Every constant of the truth. Frozen: a changed constant is a different plant."""

    t_ref: float = 108.0  # °C, reference temperature of the Arrhenius laws
    volume: float = 1000.0  # m3 per oxidiser
    density: float = 0.80  # t/m3 of the oxidate
    p_abs: float = 6.0  # bar in the oxidisers
    k_o2: float = 0.004  # bar, O2 half-saturation
    kf_ref: float = 1.25  # wt%^0.5/h, formation rate constant at t_ref
    ef: float = 85_000.0  # J/mol
    kd_ln_a: float = 30.0  # Duh (1998) thermal decomposition, ln pre-exponential
    kd_e: float = 122_000.0  # J/mol
    ki_ref: float = 0.005  # 1/h, induced decomposition at t_ref
    ei: float = 125_000.0  # J/mol
    delta: float = 1.5  # background initiation
    beta_ref: float = 0.013  # termination by-products per CHP formed
    e_beta: float = 30_000.0
    ap_odds_ref: float = 0.18 / 0.82  # share of by-products going to AP
    e_ap: float = 40_000.0
    gamma: float = 1.6  # cumene activity coefficient in the concentrate
    ntu0: float = 4.2
    feed_ref: float = 215.0  # t/h, design feed of the concentrator NTU
    chi_c: float = 5.0  # evaporator thermal-loss multiplier on the Duh law
    tau_ev: float = 0.5  # h
    rho_concentrate: float = 1.05  # kg/L, to turn the concentrate's wt % into mol/L
    latent_heat: float = 42.0  # MJ/kmol of cumene
    ua_ev: float = 1.2  # MW/K of the clean evaporator
    cleavage_selectivity: float = 0.995
    dmba_to_ams: float = 0.85
    ams_to_cumene: float = 0.98
    vent_condenser_efficiency: float = 0.45
    vacuum_inerts: float = 0.5  # kmol/h of non-condensables through the vacuum system
    cleavage_cumene_loss: float = 0.05
    recycle_loss: float = 0.0008  # kmol lost per kmol of cumene evaporated and recycled

    def version_hash(self) -> str:
        """sha256 (first 16 hex digits) of the parameter values: the truth's version."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


DEFAULT_PARAMETERS = PlantParameters()


def cumene_vapour_pressure_kpa(temperature_c: np.ndarray) -> np.ndarray:
    """Antoine law of cumene (mmHg form of PLANT.md), in kPa."""
    return 10.0 ** (6.93666 - 1460.793 / (207.777 + temperature_c)) * 0.133322


def _arrhenius(k_ref: float, energy: float, temperature_c: np.ndarray, t_ref: float) -> np.ndarray:
    return k_ref * np.exp(-energy / R_GAS * (1.0 / (temperature_c + 273.15) - 1.0 / (t_ref + 273.15)))


def _duh_rate(temperature_c: np.ndarray, p: PlantParameters) -> np.ndarray:
    """Thermal CHP decomposition constant kD in min^-1 M^-1/2."""
    return np.exp(p.kd_ln_a - p.kd_e / (R_GAS * (temperature_c + 273.15)))


def _ap_share(temperature_c: np.ndarray, p: PlantParameters) -> np.ndarray:
    odds = _arrhenius(p.ap_odds_ref, p.e_ap, temperature_c, p.t_ref)
    return odds / (1.0 + odds)


@dataclass(frozen=True)
class _Stage:
    chp: np.ndarray  # wt % at the outlet
    dmba: np.ndarray  # wt % at the outlet (cumulative)
    ap: np.ndarray
    formed: np.ndarray  # G, gross CHP formed, wt %
    byproducts: np.ndarray  # TB, termination by-products, wt % CHP equivalent
    air_kmol: np.ndarray  # air fed, kmol/h
    air_flow: np.ndarray  # kNm3/h


def _oxidiser(
    temperature, o2, level, chp_in, dmba_in, ap_in, ph_rate, ph_decomp, feed, chi, xi_sp, p: PlantParameters
) -> _Stage:
    tau = p.volume * level / 100.0 / (feed / p.density)
    p_o2 = xi_sp * o2 / 100.0 * p.p_abs
    theta = p_o2 / (p_o2 + p.k_o2)
    a = (
        _arrhenius(p.kf_ref, p.ef, temperature, p.t_ref)
        * chi
        * ph_rate
        * theta
        * (1.0 - (chp_in + dmba_in + ap_in) / 100.0)
    )
    b = 60.0 * _duh_rate(temperature, p) * np.sqrt(MW_CHP / (10.0 * p.density))
    c = _arrhenius(p.ki_ref, p.ei, temperature, p.t_ref) * ph_decomp
    # CSTR balance w - w_in = tau (a (s + delta) - b s - c s^2) with s = sqrt(w): one positive root.
    qa = 1.0 + tau * c
    qb = tau * (a - b)
    qc = chp_in + tau * a * p.delta
    s = (qb + np.sqrt(qb * qb + 4.0 * qa * qc)) / (2.0 * qa)
    formed = tau * a * (s + p.delta)
    decomposed = tau * (b * s + c * s * s)
    beta = (
        p.beta_ref
        * np.exp(p.e_beta / R_GAS * (1.0 / (p.t_ref + 273.15) - 1.0 / (temperature + 273.15)))
        * (1.0 + 0.4 * (1.0 - theta))
    )
    byproducts = beta * formed
    f_ap = _ap_share(temperature, p)
    lost = decomposed + byproducts
    dmba = dmba_in + (1.0 - f_ap) * lost * MW_DMBA / MW_CHP
    ap = ap_in + f_ap * lost * MW_AP / MW_CHP
    o2_consumed = feed * 10.0 * formed * (1.0 + beta / 2.0) / MW_CHP
    y = o2 / 100.0
    air_kmol = o2_consumed / (0.2095 - y / (1.0 - y) * 0.7905)
    return _Stage(s * s, dmba, ap, formed, byproducts, air_kmol, air_kmol * 22.414 / 1000.0)


def _broadcast_inputs(inputs: Mapping[str, np.ndarray | float]) -> dict[str, np.ndarray]:
    missing = [name for name in INPUTS if name not in inputs and name not in NOMINAL_HIDDEN]
    if missing:
        raise KeyError(f"steady_state needs the inputs {missing}")
    values = {name: np.asarray(inputs.get(name, NOMINAL_HIDDEN.get(name)), dtype=float) for name in INPUTS}
    arrays = np.broadcast_arrays(*values.values())
    return dict(zip(INPUTS, arrays, strict=True))


def steady_state(
    inputs: Mapping[str, np.ndarray | float], params: PlantParameters = DEFAULT_PARAMETERS
) -> dict[str, np.ndarray]:
    """The settled plant for setpoints, disturbances and hidden states (hidden default to 1.0).

    Returns the measured outputs of `OUTPUTS` plus diagnostics: ox1_dmba, ox1_ap,
    concentrated_dmba, evaporator_loss (lambda), selectivity (net CHP per cumene converted, %),
    vent losses in kmol/h and the production in kmol/h.
    """
    p = params
    x = _broadcast_inputs(inputs)
    feed, ph = x["cumene_feed"], x["oxidation_ph"]
    # pH: acid catalyses CHP→phenol (which inhibits), base catalyses induced decomposition.
    ph_rate = 1.0 / (1.0 + np.exp(-(ph - 6.3) / 0.35)) / (1.0 + x["feed_inhibitor"] / 400.0)
    ph_decomp = 1.0 + 4.0 * np.exp(-(ph - 6.0) / 0.5) + 3.0 * np.exp((ph - 10.0) / 0.5)
    zero = np.zeros_like(feed)
    ox1 = _oxidiser(
        x["ox1_temperature"],
        x["ox1_offgas_o2"],
        x["ox1_level"],
        x["feed_chp"],
        zero,
        zero,
        ph_rate,
        ph_decomp,
        feed,
        x["chi"],
        x["xi_sp"],
        p,
    )
    ox2 = _oxidiser(
        x["ox2_temperature"],
        x["ox2_offgas_o2"],
        x["ox2_level"],
        ox1.chp,
        ox1.dmba,
        ox1.ap,
        ph_rate,
        ph_decomp,
        feed,
        x["chi"],
        x["xi_sp"],
        p,
    )

    # Concentrator: moles per 100 kg of oxidate; CHP, DMBA, AP non-volatile, vapour = cumene.
    n_chp, n_dmba, n_ap = ox2.chp / MW_CHP, ox2.dmba / MW_DMBA, ox2.ap / MW_AP
    n_cumene_feed = np.maximum(100.0 - ox2.chp - ox2.dmba - ox2.ap, 0.0) / MW_CUMENE
    n_nonvol = n_chp + n_dmba + n_ap
    x_feed = n_cumene_feed / (n_cumene_feed + n_nonvol)
    t_ev, p_ev = x["evaporator_temperature"], x["evaporator_pressure"]
    x_eq = p_ev / (p.gamma * cumene_vapour_pressure_kpa(t_ev))
    approach = 1.0 - np.exp(-p.ntu0 * x["xi_ev"] * (p.feed_ref / feed) ** 0.3)
    x_c = np.clip(x_eq + (1.0 - approach) * (x_feed - x_eq), 1e-4, x_feed)
    n_cumene = x_c / (1.0 - x_c) * n_nonvol
    # Thermal loss: the CHP molarity is taken from the loss-free concentrate (keeps it closed form).
    mass_no_loss = ox2.chp + ox2.dmba + ox2.ap + MW_CUMENE * n_cumene
    molarity = ox2.chp / mass_no_loss * 1000.0 * p.rho_concentrate / MW_CHP
    loss = 1.0 - np.exp(-p.chi_c * 60.0 * _duh_rate(t_ev, p) / np.sqrt(molarity) * p.tau_ev)
    f_ap_ev = _ap_share(t_ev, p)
    n_chp_c = n_chp * (1.0 - loss)
    n_dmba_c = n_dmba + (1.0 - f_ap_ev) * n_chp * loss
    n_ap_c = n_ap + f_ap_ev * n_chp * loss
    mass_c = MW_CHP * n_chp_c + MW_DMBA * n_dmba_c + MW_AP * n_ap_c + MW_CUMENE * n_cumene
    concentrated_chp = 100.0 * MW_CHP * n_chp_c / mass_c
    n_evaporated = n_cumene_feed - n_cumene
    duty = feed * 10.0 * n_evaporated * p.latent_heat / 3600.0
    steam_temperature = t_ev + duty / (p.ua_ev * x["xi_ev"])

    # Yield: phenol made per cumene consumed (molar), kmol/h.
    scale = feed * 10.0
    converted = scale * (ox1.formed + ox2.formed + ox1.byproducts + ox2.byproducts) / MW_CHP
    net_chp = scale * (n_chp_c - x["feed_chp"] / MW_CHP)
    dmba_out = scale * n_dmba_c
    phenol = p.cleavage_selectivity * net_chp - 0.5 * (1.0 - p.dmba_to_ams) * dmba_out
    psat_vent = cumene_vapour_pressure_kpa(x["cooling_water_temperature"] + 5.0)
    gas_out = (
        ox1.air_kmol / (1.0 - x["ox1_offgas_o2"] / 100.0) + ox2.air_kmol / (1.0 - x["ox2_offgas_o2"] / 100.0)
    ) * 0.7905
    vent_loss = (1.0 - p.vent_condenser_efficiency) * gas_out * psat_vent / (p.p_abs * 100.0 - psat_vent)
    vacuum_loss = p.vacuum_inerts * psat_vent / np.maximum(p_ev - psat_vent, 0.05)
    cleavage_loss = p.cleavage_cumene_loss * scale * n_cumene
    recycle_loss = p.recycle_loss * scale * n_evaporated
    consumed = (
        converted
        - p.dmba_to_ams * p.ams_to_cumene * dmba_out
        + vent_loss
        + vacuum_loss
        + cleavage_loss
        + recycle_loss
    )
    yield_ = 100.0 * phenol / consumed
    return {
        "ox1_chp": ox1.chp,
        "ox2_chp": ox2.chp,
        "concentrated_chp": concentrated_chp,
        "yield": yield_,
        "ox1_air_flow": ox1.air_flow,
        "ox2_air_flow": ox2.air_flow,
        "ox2_dmba": ox2.dmba,
        "ox2_ap": ox2.ap,
        "evaporator_steam_temperature": steam_temperature,
        "phenol_production": phenol * MW_PHENOL / 1000.0,
        "ox1_dmba": ox1.dmba,
        "ox1_ap": ox1.ap,
        "concentrated_dmba": 100.0 * MW_DMBA * n_dmba_c / mass_c,
        "evaporator_loss": loss,
        "selectivity": 100.0 * net_chp / np.maximum(converted, 1e-9),
        "vent_loss_kmol": vent_loss + vacuum_loss,
        "phenol_kmol": phenol,
    }
