"""Named training configurations: each loads, states its command and expected result, and builds."""

import pkgutil

import jax
import jax.numpy as jnp
import pytest

from resjax import models
from resjax.train import config, configs, step

NAMES = sorted(m.name for m in pkgutil.iter_modules(configs.__path__))


def test_the_documented_configurations_exist():
    assert {"paper", "fast", "cpu", "digits", "tiny", "imagenet34", "imagenet34_fast"} <= set(NAMES)
    assert "imagenet34-fast" in configs.names() and config.load("imagenet34_fast") == config.load("imagenet34-fast")


@pytest.mark.parametrize("name", NAMES)
def test_configuration_states_its_command_and_expected_result_and_builds(name):
    module = __import__(f"resjax.train.configs.{name}", fromlist=["CONFIG"])
    assert "Command:" in module.__doc__ and "Expected:" in module.__doc__
    cfg = config.load(name)
    assert float(step.schedule(cfg)(0)) >= 0.0
    net = models.ResNet(num_classes=cfg.num_classes, **cfg.model)
    shapes = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    assert jax.tree.leaves(shapes["params"])


def test_unknown_configuration_and_bad_override_are_clear_errors():
    with pytest.raises(ValueError, match="available: cpu, digits, fast, imagenet34, imagenet34-fast, paper, tiny"):
        config.load("nope")
    with pytest.raises(ValueError, match="unknown field 'stepz' \\(did you mean 'steps'\\?\\)"):
        config.load("tiny").override(["stepz=3"])
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        config.load("tiny").override(["steps"])


def test_override_of_one_network_field_keeps_the_others():
    base = config.load("cpu")
    cfg = base.override(["model.conv_bias=false", "model.widths=[16, 32, 128]", "steps=3000"])
    assert cfg.model == {**base.model, "conv_bias": False, "widths": (16, 32, 128)} and cfg.steps == 3000
    assert config.load("cpu").model == base.model  # the loaded configuration is untouched
    assert base.override(["model={\"widths\": [32, 64, 128]}"]).model == {"widths": [32, 64, 128]}
    with pytest.raises(ValueError, match="same length"):  # zip used to truncate the stages silently
        base.override(["model={\"widths\": [4]}"])
    with pytest.raises(ValueError, match="model.NAME"):
        base.override(["steps.x=3"])
    with pytest.raises(ValueError, match="model takes a JSON object"):
        base.override(["model=3"])


def test_weight_standardization_is_a_network_option_refused_beside_the_whitened_stem():
    base = config.load("cpu")
    assert base.override(["model.weight_standardization=true"]).model["weight_standardization"] is True
    with pytest.raises(ValueError, match="model: weight_standardization=true standardises every kernel"):
        base.override(["model.weight_standardization=true", "model.init_scheme=paper"])
    with pytest.raises(ValueError, match="whose scales model.weight_standardization=true would standardise away"):
        base.override(["model.weight_standardization=true", "stem_init=whitening"])


def test_steps_per_call_must_divide_every_interval_and_says_which_would():
    with pytest.raises(config.ConfigError, match=r"steps_per_call=3 must divide log_every=100, eval_every=5000.*use one of \[1, 2, 4, 5, 10, 20, 25, 50\]"):
        config.load("paper").override(["steps_per_call=3"])
    assert config.load("paper").override(["steps_per_call=4"]).steps_per_call == 4  # 60000, 100, 5000, 1000


def test_progressive_resizing_phases_are_checked_and_looked_up_by_step():
    base = config.load("cpu").override(["progressive_resizing=[]"])
    assert base.side_at(0) is None and base.sides() == [None]
    cfg = base.override(["progressive_resizing=[[1000, 16], [1600, 24]]"])
    assert cfg.progressive_resizing == ((1000, 16), (1600, 24)) and cfg.sides() == [16, 24, None]
    assert [cfg.side_at(s) for s in (0, 999, 1000, 1599, 1600, 2199)] == [16, 16, 24, 24, None, None]
    assert config.load("cpu").progressive_resizing == cfg.progressive_resizing  # the cpu recipe's
    with pytest.raises(config.ConfigError,
                       match=r"steps \[1600, 1000\] must be strictly increasing and below steps=2200"):
        base.override(["progressive_resizing=[[1600, 16], [1000, 24]]"])
    with pytest.raises(config.ConfigError, match=r"below steps=2200 \(with fewer steps, scale them too, or set "
                                                  r"progressive_resizing=\[\] to train at full size throughout\)"):
        base.override(["progressive_resizing=[[2200, 16]]"])
    assert config.load("cpu").override(["steps=500", "progressive_resizing=[]"]).sides() == [None]
    with pytest.raises(config.ConfigError, match=r"progressive_resizing\[0\]\[1\]=0: input should be greater"):
        base.override(["progressive_resizing=[[100, 0]]"])
    with pytest.raises(config.ConfigError, match=r"\[1002\] are not multiples of steps_per_call=5"):
        base.override(["progressive_resizing=[[1002, 16]]", "steps_per_call=5"])
    with pytest.raises(config.ConfigError, match="progressive_mode='zoom' is not one of"):
        base.override(["progressive_mode=zoom"])
