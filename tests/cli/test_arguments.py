"""The CLI's argument types and its command groups: each bad value is one line and exit status 2."""

from __future__ import annotations

import argparse

import pytest

from skinnet.cli import build_parser, main
from skinnet.cli.arguments import fold_list, fold_or_all, pixel_spacing, positive_float, positive_int


@pytest.mark.parametrize(("parse", "text", "value"), [
    (positive_int, "3", 3), (positive_float, "0.5", 0.5), (fold_or_all, "all", "all"), (fold_or_all, "2", "2"),
    (pixel_spacing, "0.02", 0.02), (pixel_spacing, "0.02,0.025", (0.02, 0.025)), (fold_list, "0,2,4", [0, 2, 4]),
])
def test_good_values_parse(parse, text: str, value: object) -> None:
    assert parse(text) == value


@pytest.mark.parametrize(("parse", "text"), [
    (positive_int, "0"), (positive_int, "-1"), (positive_int, "2.5"), (positive_float, "nan"),
    (positive_float, "inf"), (positive_float, "0"), (positive_float, "x"), (fold_or_all, "some"),
    (pixel_spacing, "0"), (pixel_spacing, "1,2,3"), (pixel_spacing, "a"), (pixel_spacing, "150"),
    (pixel_spacing, "1e308"), (pixel_spacing, "1e-300"), (pixel_spacing, "0.02,inf"),
])
def test_bad_values_are_refused_with_the_value(parse, text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text).replace(".", r"\.")):
        parse(text)


def test_every_command_is_registered_once_in_help_order() -> None:
    sub = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    assert list(sub.choices) == ["train", "cv", "finalize", "evaluate", "report", "predict", "merge-shards",
                                 "export", "serve", "demo", "dicom-node"]
    for name, parser in sub.choices.items():
        assert callable(parser.get_default("func")), name


def test_a_bad_option_value_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "x.jpg", "--out", "o", "--workers", "0"])
    assert exit_info.value.code == 2
    assert "--workers: expected a whole number of at least 1, got '0'" in capsys.readouterr().err


def test_a_user_error_inside_a_command_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate"]) == 2
    assert capsys.readouterr().err == ("skinnet evaluate: error: pass --pred DIR --gt DIR, or --run RUN_DIR "
                                       "--test DIR\n")
