"""Every shipped profile is physically sane and carries only sourced numbers."""

import math
import re

import pytest

from keidash.errors import ProfileError
from keidash.profiles import list_profiles, load_profile, profile_from_dict
from keidash.profiles.tyres import parse_tyre

PROFILES = list_profiles()


def test_the_trucks_are_shipped():
    assert {"hijet-s500p", "carry-dd51t", "acty-ha4", "sambar-ks4", "sambar-tt2", "minicab-u42t"} <= set(PROFILES)


@pytest.mark.parametrize("name", PROFILES)
def test_profile_is_physically_sane(name):
    p = load_profile(name)
    assert p.name == name
    e = p.engine
    assert 540 <= e.displacement_cc <= 660, "kei engines are 550 or 660 cc"
    if e.cylinders is not None:
        assert e.cylinders in (3, 4)
    if e.peak_power_kw is not None:
        assert 25 <= e.peak_power_kw <= 48, "kei trucks make about 40-64 PS"
    if e.peak_torque_nm is not None:
        assert 40 <= e.peak_torque_nm <= 110
    if e.peak_power_rpm and e.peak_torque_rpm:
        assert e.peak_torque_rpm < e.peak_power_rpm <= 8000
        # power at peak torque cannot exceed peak power
        assert e.peak_torque_nm * e.peak_torque_rpm * math.pi / 30 / 1000 <= e.peak_power_kw * 1.001
    assert 1.5 <= p.tyre.rolling_circumference_m <= 1.85
    if p.gear_ratios:
        assert list(p.gear_ratios) == sorted(p.gear_ratios, reverse=True), "1st is the lowest gear"
        assert 3.0 <= p.gear_ratios[0] <= 6.0 and 0.6 <= p.gear_ratios[-1] <= 1.1
        assert 3.0 <= p.final_drive <= 9.0
        assert all(a > b for a, b in zip(p.gear_ratios, p.gear_ratios[1:])), "each gear is taller than the last"
        k = p.rpm_per_kmh()
        assert len(k) == len(p.gear_ratios)
        # 100 km/h in top gear lands between 3000 and 6500 rpm on a kei truck
        assert 3000 <= 100 * k[-1] <= 6500
        # and 60 km/h in top gear between 2000 and 4000 rpm
        assert 2000 <= 60 * k[-1] <= 4000
    if p.reverse_ratio is not None:
        assert 3.0 <= p.reverse_ratio <= 6.0
    if p.transfer_low_ratio is not None:
        assert 1.0 < p.transfer_low_ratio <= 3.0
    if p.extra_low_ratio is not None and p.gear_ratios:
        assert p.extra_low_ratio > p.gear_ratios[0], "EL is below 1st"
    if p.transmission is not None:
        assert re.fullmatch(r"[3-6](MT|AT)(\+EL)?|CVT", p.transmission), p.transmission
    if p.tach_pulses_per_rev is not None:
        assert p.tach_pulses_per_rev in (0.5, 1.0, 1.5, 2.0)
    if p.forward_gears is not None:
        assert 4 <= p.forward_gears <= 6


@pytest.mark.parametrize("name", PROFILES)
def test_every_table_names_its_sources(name):
    p = load_profile(name)
    for table in ("engine", "tyre"):
        assert p.sources.get(table), f"{name} [{table}] has no sources"
    gearbox_numbers = (p.gear_ratios, p.gear_count, p.final_drive, p.reverse_ratio, p.transfer_low_ratio,
                       p.extra_low_ratio, p.transmission)
    if any(n not in (None, ()) for n in gearbox_numbers):
        assert p.sources.get("gearbox"), f"{name} [gearbox] has numbers but no sources"
    if p.tach_pulses_per_rev is not None:
        assert p.sources.get("tach"), f"{name} [tach] has pulses_per_rev but no sources"


def test_unsourced_ratios_are_left_empty_not_guessed():
    for name in ("carry-dd51t", "acty-ha4", "sambar-ks4", "sambar-tt2", "minicab-u42t"):
        p = load_profile(name)
        assert p.gear_ratios == () and p.final_drive is None and not p.ratios_known
        assert p.rpm_per_kmh() == ()
        assert p.extra_low_ratio is None


def test_sambar_tt2_carries_what_the_2009_manual_gives():
    # tlorien/Kei-Truck-Van-and-Car-Manuals, 2009 GBD-TT2: EL+5MT selective 4WD, tach output R133-15;
    # the ratios are only in the chapter's pictures, so none is entered
    p = load_profile("sambar-tt2")
    assert p.transmission == "5MT+EL" and p.forward_gears == 5 and p.gear_ratios == ()
    assert p.engine.cylinders == 4 and p.engine.displacement_cc == 658
    assert p.tach_pulses_per_rev is None  # the manual names the output, not its pulses per revolution
    assert any("GBD-TT2/transmission.md" in s for s in p.sources["gearbox"])
    assert any("GBD-TT2/diagnostics.md" in s for s in p.sources["tach"])


def test_hijet_matches_the_sourced_derivation():
    # kei-vehicles.md: 278.5 / 163.9 / 113.0 / 68.6 / 50.9 rpm per km/h with C_roll = 1.619 m;
    # keidash uses the measured 536 mm diameter (C_roll 1.6165 m), 0.16 % shorter.
    p = load_profile("hijet-s500p")
    expected = (278.5, 163.9, 113.0, 68.6, 50.9)
    for got, want in zip(p.rpm_per_kmh(), expected):
        assert got == pytest.approx(want, rel=0.004)
    assert p.gear_ratios == (4.059, 2.389, 1.646, 1.000, 0.742)
    assert p.final_drive == 6.666 and p.transfer_low_ratio == 1.782


@pytest.mark.parametrize("code,size,diameter_mm", [
    ("145R12 6PR LT", "145R12", 542.0),           # measured
    ("145/80R12 80/78N LT", "145/80R12", 536.0),  # measured
    ("5.00-12", "5.00-12", 566.0),                # measured, bias
    ("155/65R13", "155/65R13", 13 * 25.4 + 2 * 155 * 0.65),
    ("165 R 15", "165R15", 15 * 25.4 + 2 * 165 * 0.80),  # ETRTO: no aspect = 80
])
def test_tyre_sizes(code, size, diameter_mm):
    t = parse_tyre(code)
    assert t.size == size
    assert t.diameter_m * 1000 == pytest.approx(diameter_mm)
    assert t.rolling_circumference_m == pytest.approx(0.96 * math.pi * diameter_mm / 1000)


def test_rolling_circumferences_from_the_sources():
    # kei-vehicles.md [D]: 145/80R12 -> 1.619 m (formula), 5.00-12 -> 1.707 m
    assert parse_tyre("5.00-12").rolling_circumference_m == pytest.approx(1.707, abs=0.001)
    assert parse_tyre("145/80R12").rolling_circumference_m == pytest.approx(1.619, abs=0.004)


@pytest.mark.parametrize("code", ["", "12", "R12", "big tyres", "145/80", "5.00"])
def test_bad_tyre_codes_say_how_to_write_one(code):
    with pytest.raises(ValueError, match="write it like 145R12"):
        parse_tyre(code)


def _minimal(**changes):
    data = {"name": "x", "title": "X", "engine": {"displacement_cc": 657}, "tyre": {"size": "145R12"}}
    for key, value in changes.items():
        table, _, field = key.partition("__")
        if field:
            data.setdefault(table, {})[field] = value
        else:
            data[table] = value
    return data


@pytest.mark.parametrize("changes,message", [
    ({"engine__redline": 7000}, "unknown key 'redline'"),
    ({"engine__peak_power_kw": -3}, "peak_power_kw must be a positive number"),
    ({"gearbox__gear_ratios": [4.0, "x"]}, "gear_ratios must be a list"),
    ({"gearbox__gear_ratios": [4.0, 2.0], "gearbox__gear_count": 5}, "gear_count is 5 but 2"),
    ({"gearbox__transmission": "5MT", "gearbox__gear_count": 4}, "transmission '5MT' names 5 forward gears but "
                                                                 "gear_count is 4"),
    ({"gearbox__transmission": "4MT+EL", "gearbox__gear_ratios": [4.0, 2.4, 1.6, 1.0, 0.8]},
     r"transmission '4MT\+EL' names 4 forward gears but gear_ratios give 5"),
    ({"gearbox__gear_ratios": [4.0, 2.4, 2.4, 1.0]}, "gear_ratios must fall from 1st to top gear"),
    ({"gearbox__gear_ratios": [1.0, 2.4, 4.0]}, "gear_ratios must fall from 1st to top gear"),
    ({"gearbox__gear_ratios": [4.0, math.inf]}, "gear_ratios must be a list"),
    ({"gearbox__final_drive": math.inf}, r"test \[gearbox\]: final_drive must be a positive number"),
    ({"gearbox__reverse_ratio": math.nan}, r"test \[gearbox\]: reverse_ratio must be a positive number"),
    ({"gearbox__extra_low_ratio": -5.0}, r"test \[gearbox\]: extra_low_ratio must be a positive number"),
    ({"gearbox__extra_low_ratio": "EL"}, "extra_low_ratio must be a positive number"),
    ({"gearbox__gear_ratios": [4.0, 2.4], "gearbox__extra_low_ratio": 3.5},
     r"test \[gearbox\]: extra_low_ratio 3.5 must be above 1st gear's 4"),
    ({"tyre__size": "huge"}, "not understood"),
    ({"colour": "white"}, "unknown key 'colour'"),
])
def test_bad_profiles_get_one_plain_sentence(changes, message):
    with pytest.raises(ProfileError, match=message):
        profile_from_dict(_minimal(**changes), "test")


def test_extra_low_gear_is_kept_apart_from_the_forward_gears():
    p = profile_from_dict(_minimal(gearbox={"gear_ratios": [4.0, 2.4, 1.6, 1.0, 0.8], "final_drive": 6.0,
                                            "extra_low_ratio": 6.5, "sources": ["test"]}), "test")
    assert p.extra_low_ratio == 6.5 and p.forward_gears == 5 and len(p.rpm_per_kmh()) == 5
    assert p.rpm_per_kmh()[0] == pytest.approx(1000 / 60 / p.tyre.rolling_circumference_m * 4.0 * 6.0)
    # an EL without the forward ratios is fine (a source may give only the one)
    assert profile_from_dict(_minimal(gearbox__extra_low_ratio=6.5), "test").extra_low_ratio == 6.5
    assert profile_from_dict(_minimal(), "test").extra_low_ratio is None


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ProfileError, match="unknown profile 'hijet-s999'.*hijet-s500p"):
        load_profile("hijet-s999")


def test_profile_from_a_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\ntitle = "Mine"\n[engine]\ndisplacement_cc = 657\n'
                    '[gearbox]\ngear_ratios = [4.0, 2.4, 1.6, 1.0, 0.8]\nfinal_drive = 6.0\n'
                    '[tyre]\nsize = "145R12"\n')
    p = load_profile(str(path))
    assert p.ratios_known and len(p.rpm_per_kmh()) == 5
    (tmp_path / "bad.toml").write_text("name = [")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(str(tmp_path / "bad.toml"))


# -- the [learned] table (ratios learned by driving, keidash.estimate.learn) ---------------------
def test_learned_ratios_are_used_when_no_sourced_ratios():
    p = profile_from_dict(_minimal(learned={"rpm_per_kmh": [280.0, 160.0, 110.0, 70.0, 51.0],
                                            "confidence": [0.6, 0.9, 0.9, 0.9, 0.8], "samples": 900,
                                            "logs": ["a.csv"]}), "test")
    assert p.rpm_per_kmh() == (280.0, 160.0, 110.0, 70.0, 51.0)
    assert p.learned.samples == 900 and p.learned.logs == ("a.csv",)


def test_sourced_ratios_win_over_learned_ones():
    hijet = load_profile("hijet-s500p")
    data = {"name": "h", "title": "H", "engine": {"displacement_cc": 658},
            "gearbox": {"gear_ratios": list(hijet.gear_ratios), "final_drive": hijet.final_drive},
            "tyre": {"size": "145/80R12"}, "learned": {"rpm_per_kmh": [10.0] * 5, "confidence": [1.0] * 5}}
    assert profile_from_dict(data, "test").rpm_per_kmh() == hijet.rpm_per_kmh()


def test_a_gear_not_learned_is_nan_and_gives_no_ratios():
    p = profile_from_dict(_minimal(learned={"rpm_per_kmh": [72.0, 48.0, math.nan], "confidence": [0.5, 0.9, 0.0]}),
                          "test")
    assert p.learned.rpm_per_kmh == (72.0, 48.0, None) and p.rpm_per_kmh() == ()


def test_learned_only_profile_needs_no_engine_or_tyre():
    p = profile_from_dict({"name": "learned", "title": "L", "learned": {"rpm_per_kmh": [100.0, 50.0],
                                                                         "confidence": [1, 1]}}, "test")
    assert p.tyre is None and p.engine.displacement_cc is None and p.rpm_per_kmh() == (100.0, 50.0)
    with pytest.raises(ProfileError, match=r"\[engine\] is missing"):
        profile_from_dict({"name": "x", "title": "X"}, "test")


@pytest.mark.parametrize("learned,message", [
    ({"rpm_per_kmh": [-3.0], "confidence": [0.5]}, "rpm_per_kmh must be a list of positive numbers"),
    ({"rpm_per_kmh": [70.0, 50.0], "confidence": [0.5]}, "one number from 0 to 1 per rpm_per_kmh"),
    ({"rpm_per_kmh": [70.0], "confidence": [1.5]}, "one number from 0 to 1"),
    ({"rpm_per_kmh": [70.0], "confidence": [0.5], "samples": -1}, "samples must be a whole number"),
    ({"rpm_per_kmh": [70.0], "confidence": [0.5], "when": "today"}, "unknown key 'when'"),
    ({"rpm_per_kmh": [70.0], "confidence": [0.5], "coast_down": [20.0]}, "coast_down must be a list per gear"),
    ({"rpm_per_kmh": [70.0], "confidence": [0.5], "coast_down": [[float("inf")]]}, "0 to 300"),
    ({"rpm_per_kmh": [70.0], "confidence": [0.5], "idle_rpm": float("nan")}, "idle_rpm must be a positive number"),
    ({"rpm_per_kmh": [70.0], "confidence": [0.5], "idle_rpm": 8000}, "200 to 3,000 rpm, not 8000"),
])
def test_bad_learned_tables_get_one_plain_sentence(learned, message):
    with pytest.raises(ProfileError, match=message):
        profile_from_dict(_minimal(learned=learned), "test")


# -- the config and a profile file are read alike (keidash.config.read_toml) -----------------------
def _config_reader(path):
    from keidash.config import load_config
    from keidash.errors import ConfigError
    return lambda: load_config(str(path)), "config file", ConfigError


def _profile_reader(path):
    return lambda: load_profile(str(path)), "profile file", ProfileError


@pytest.mark.parametrize("reader", [_config_reader, _profile_reader])
@pytest.mark.parametrize(("content", "sentence"), [
    (None, "{what} {path} does not exist"),
    (bytes(range(128, 256)), "{what} {path} is not text (a binary file?): "),
    (b'name = "mine"\ntitle = = 3\n', "{what} {path} is not valid TOML: Invalid value (at line 2, column 9)"),
    (b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", "{what} {path} is not valid TOML: nested too deeply"),
])
def test_the_config_and_a_profile_file_say_the_same_about_the_same_fault(tmp_path, reader, content, sentence):
    path = tmp_path / "truck.toml"
    if content is not None:
        path.write_bytes(content)
    read, what, error = reader(path)
    with pytest.raises(error) as info:  # a profile nested too deeply was a RecursionError traceback
        read()
    assert str(info.value).startswith(sentence.format(what=what, path=path)), str(info.value)


@pytest.mark.parametrize("name, count", [("5MT", 5), ("5MT+EL", 5), ("4MT+EL", 4), ("3AT", 3), ("6-speed AT", 6),
                                         ("5 M/T", 5), ("CVT", None), ("manual", None), ("AT", None),
                                         ("12MT", None), ("0MT", None), (None, None)])
def test_a_gearbox_name_gives_its_forward_gear_count(name, count):
    """`learn --transmission 5MT` and a vehicle file's "5MT" give live learning and learn the count, as a
    profile's gear_count does; an EL below 1st is not counted, and a name without a number gives none."""
    from keidash.profiles import gears_named
    assert gears_named(name) == count



def test_a_profile_whose_transmission_names_a_count_has_that_many_forward_gears():
    assert profile_from_dict(_minimal(gearbox__transmission="5MT"), "test").forward_gears == 5
    assert profile_from_dict(_minimal(gearbox__transmission="5MT+EL", gearbox__gear_count=5), "test").forward_gears == 5
    assert profile_from_dict(_minimal(gearbox__transmission="manual"), "test").forward_gears is None
