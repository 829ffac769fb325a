"""Config: JSON round trip, unknown keys with close-match hints, ``--set`` overrides, coercion, validation."""

from __future__ import annotations

import dataclasses
import json

import pytest

from xmtc.config import Config, check, doc_field
from xmtc.errors import ConfigError, XMTCError
from xmtc.train import TrainConfig


@dataclasses.dataclass
class ToyConfig(Config):
    """A config with one field of every supported kind."""

    hidden: int = doc_field(8, "hidden size")
    dropout: float = doc_field(0.5, "dropout rate")
    name: str = doc_field("toy", "a name")
    use_bias: bool = doc_field(True, "add a bias")
    sizes: tuple[int, ...] = doc_field((2, 4), "layer sizes")
    tags: list[str] = doc_field(["a"], "tags")
    limit: int | None = doc_field(None, "optional cap")

    def validate(self) -> None:
        check(self.hidden > 0, f"hidden must be positive, but is {self.hidden}")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), but is {self.dropout}")


def test_defaults_and_docs():
    cfg = ToyConfig()
    assert cfg.hidden == 8 and cfg.tags == ["a"]
    assert ToyConfig().tags is not cfg.tags  # mutable defaults are not shared
    docs = ToyConfig.describe()
    assert set(docs) == set(ToyConfig.field_names())
    assert all(docs.values())


def test_json_round_trip(tmp_path):
    cfg = ToyConfig(hidden=16, sizes=(3,), tags=["x", "y"], limit=7)
    path = tmp_path / "cfg.json"
    text = cfg.to_json(path)
    assert json.loads(text) == json.loads(path.read_text())
    back = ToyConfig.from_json(path)
    assert back == cfg
    assert isinstance(back.sizes, tuple)  # JSON list -> tuple field


def test_from_dict_unknown_key_names_close_match():
    with pytest.raises(ConfigError) as e:
        ToyConfig.from_dict({"hiden": 3})
    msg = str(e.value)
    assert "'hiden'" in msg and "did you mean 'hidden'" in msg and "ToyConfig" in msg
    assert "valid keys:" in msg


def test_from_dict_unknown_key_without_close_match():
    with pytest.raises(ConfigError) as e:
        ToyConfig.from_dict({"zzzzzz": 3})
    assert "did you mean" not in str(e.value)
    assert "'zzzzzz'" in str(e.value)


def test_from_json_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        ToyConfig.from_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"hidden": 3,\n "dropout": }')
    with pytest.raises(ConfigError, match=r"bad\.json:2: invalid JSON"):
        ToyConfig.from_json(bad)
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        ToyConfig.from_json(arr)
    typo = tmp_path / "typo.json"
    typo.write_text('{"dropot": 0.1}')
    with pytest.raises(ConfigError, match=r"typo\.json: unknown key 'dropot'.*did you mean 'dropout'"):
        ToyConfig.from_json(typo)


def test_with_overrides_parses_values():
    cfg = ToyConfig().with_overrides(["hidden=32", "dropout=0", "use_bias=false", "sizes=[1, 2, 3]",
                                      "tags=[\"p\", \"q\"]", "limit=5", "name=hello world"])
    assert cfg.hidden == 32
    assert cfg.dropout == 0.0 and isinstance(cfg.dropout, float)  # int -> float
    assert cfg.use_bias is False
    assert cfg.sizes == (1, 2, 3)
    assert cfg.tags == ["p", "q"]
    assert cfg.limit == 5
    assert cfg.name == "hello world"
    assert ToyConfig().with_overrides(["limit=null"]).limit is None


def test_with_overrides_keeps_text_for_string_fields():
    assert ToyConfig().with_overrides(["name=123"]).name == "123"
    assert ToyConfig().with_overrides(["name=true"]).name == "true"
    assert TrainConfig().with_overrides(["device=cpu"]).device == "cpu"


def test_with_overrides_does_not_mutate():
    cfg = ToyConfig()
    cfg.with_overrides(["hidden=99"])
    assert cfg.hidden == 8


@pytest.mark.parametrize(
    ("assignment", "pattern"),
    [
        ("hiddn=3", r"--set: unknown key 'hiddn' for ToyConfig \(did you mean 'hidden'\?\)"),
        ("hidden", r"--set expects key=value, got 'hidden'"),
        ("hidden=abc", r"hidden must be a number, but is 'abc'"),
        ("hidden=2.5", r"hidden must be an integer, but is 2\.5"),
        ("hidden=true", r"hidden must be a number, but is True"),
        ("use_bias=1", r"use_bias must be true or false, but is 1"),
        ("dropout=\"x\"", r"dropout must be a number, but is 'x'"),
        ("hidden=0", r"hidden must be positive, but is 0"),
        ("dropout=1.5", r"dropout must be in \[0, 1\), but is 1\.5"),
    ],
)
def test_with_overrides_errors(assignment, pattern):
    with pytest.raises(ConfigError, match=pattern):
        ToyConfig().with_overrides([assignment])


def test_replace_validates():
    assert ToyConfig().replace(hidden=4).hidden == 4
    with pytest.raises(ConfigError, match="hidden must be positive, but is -1"):
        ToyConfig().replace(hidden=-1)


def test_config_error_is_user_error():
    assert issubclass(ConfigError, XMTCError)


def test_train_config_defaults_validate():
    cfg = TrainConfig()
    cfg.validate()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert all(TrainConfig.describe().values()), "every TrainConfig field needs a one-line doc"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "epochs must be positive, but is 0"),
        ({"batch_size": -2}, "batch_size must be positive, but is -2"),
        ({"eval_batch_size": 0}, "eval_batch_size must be positive, but is 0"),
        ({"lr": 0.0}, "lr must be positive, but is 0.0"),
        ({"weight_decay": -0.1}, "weight_decay must be >= 0, but is -0.1"),
        ({"optimizer": "sgd"}, "optimizer must be 'adam' or 'adamw', but is 'sgd'"),
        ({"schedule": "step"}, "schedule must be 'constant', 'cosine' or 'linear', but is 'step'"),
        ({"warmup_steps": -1}, "warmup_steps must be >= 0, but is -1"),
        ({"grad_clip": -1.0}, "grad_clip must be >= 0, but is -1.0"),
        ({"patience": -1}, "patience must be >= 0, but is -1"),
        ({"eval_every": -5}, "eval_every must be >= 0, but is -5"),
        ({"valid_fraction": 1.0}, "valid_fraction must be in (0, 1), but is 1.0"),
        ({"valid_fraction": 0.0}, "valid_fraction must be in (0, 1), but is 0.0"),
        ({"valid_max_docs": 0}, "valid_max_docs must be positive, but is 0"),
        ({"threads": -1}, "threads must be >= 0, but is -1"),
        ({"swa_start": -1}, "swa_start must be >= 0 (0: auto), but is -1"),
        ({"select_metric": "F1"}, "select_metric must look like 'P@1' or 'nDCG@5', but is 'F1'"),
        ({"select_metric": "P@0"}, "select_metric must look like 'P@1' or 'nDCG@5', but is 'P@0'"),
        ({"device": "tpu"}, "device must be 'auto', 'cpu' or 'cuda[:N]', but is 'tpu'"),
    ],
)
def test_train_config_validate_messages(changes, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict(changes)
    assert str(e.value) == message


def test_train_config_accepts_valid_metrics_and_devices():
    for metric in ("P@1", "P@5", "nDCG@3"):
        assert TrainConfig(select_metric=metric).select_metric == metric
    for device in ("auto", "cpu", "cuda", "cuda:1"):
        TrainConfig(device=device).validate()


# --------------------------------------------------------------------------- presets never override the user
def test_preset_keeps_every_value_the_user_set():
    """Regression: ``preset=fast`` used to replace every field equal to its default, user values included."""
    from xmtc.models.attentionxml import AttentionXMLConfig

    cfg = AttentionXMLConfig().with_overrides(["preset=fast", "epochs=1", "hidden=256"])
    assert cfg.epochs == 1 and cfg.hidden == 256  # 256 is the default, and the user typed it
    assert cfg.level_epochs == []  # the preset's level_epochs would override the user's epochs
    assert cfg.emb_dim == 100  # a field the user did not set comes from the preset
    filled = cfg.preset_fields()
    assert filled["emb_dim"] == "preset=fast" and "hidden" not in filled and "epochs" not in filled
    # the order of the assignments does not matter
    assert AttentionXMLConfig().with_overrides(["hidden=256", "preset=fast"]).hidden == 256
    assert AttentionXMLConfig(preset="fast").with_overrides(["hidden=256"]).hidden == 256
    assert AttentionXMLConfig(preset="fast", dropout=0.5).dropout == 0.5


def test_preset_resolution_round_trips_through_json():
    from xmtc.models.attentionxml import AttentionXMLConfig

    cfg = AttentionXMLConfig(preset="fast", epochs=2)
    again = AttentionXMLConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.preset_fields() == {}  # every field explicit in the saved JSON


def test_ablation_is_a_preset_that_yields_to_explicit_fields():
    from xmtc.models.treaderxml import TReaderXMLConfig
    from xmtc.models.treaderxml.config import ABLATIONS

    teacher6, reading6 = ABLATIONS[6]
    cfg = TReaderXMLConfig().with_overrides(["ablation=6", "teacher=false"])
    assert cfg.teacher is False and cfg.reading == reading6
    assert TReaderXMLConfig(ablation=6).teacher is teacher6
    assert TReaderXMLConfig(ablation=6).preset_fields() == {"teacher": "ablation=6", "reading": "ablation=6"}
