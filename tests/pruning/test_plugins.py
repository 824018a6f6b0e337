"""A third-party strategy through the ``shrink.strategies`` entry-point group, and ``shrink list strategies``."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner

from shrink.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _install_plugin(site: Path) -> None:
    """A minimal installed distribution: a module and a dist-info with its entry point."""
    (site / "lastfirst.py").write_text(
        textwrap.dedent(
            '''
            import torch
            from shrink.pruning import register_strategy


            @register_strategy("last-first", aliases=("LastFirst",), description="keeps the last weights of each layer", scope="layer")
            def last_first(ctx):
                return {n: torch.arange(w.numel(), dtype=torch.int32).view(w.shape) for n, w in ctx.weights.items()}
            '''
        )
    )
    dist_info = site / "lastfirst-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: lastfirst\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[shrink.strategies]\nlastfirst = lastfirst\n")


def _run(site: Path, *args: str, check: bool = True):
    """Run Python with the plug-in's site directory on the path: its stdout, or the whole result."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)])}
    done = subprocess.run([sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if not check:
        return done
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_entry_point_strategy_is_listed_and_prunes(tmp_path):
    _install_plugin(tmp_path)
    script = textwrap.dedent(
        """
        import torch
        from shrink.cli import main
        from shrink.pruning import prune

        main(["list", "strategies"], standalone_mode=False)
        m = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False), torch.nn.Linear(2, 2, bias=False))
        print(prune(m, "LastFirst", 1.6)["0.weight"].int().tolist())  # 8 / 1.6 = 5 nonzero: the classifier's 4 + 1
        """
    )
    *listing, pruned = _run(tmp_path, "-c", script).splitlines()
    assert "last-first                    LastFirst        no             keeps the last weights of each layer" in listing
    assert pruned == "[[0, 0], [0, 1]]"


def test_a_broken_plugin_fails_loudly(tmp_path):
    _install_plugin(tmp_path)
    (tmp_path / "lastfirst.py").write_text("raise RuntimeError('no torch here')\n")
    done = _run(tmp_path, "-m", "shrink", "list", "strategies", check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "Error: strategy plug-in lastfirst = lastfirst failed to load: no torch here"


def test_list_strategies_prints_an_aligned_table():
    result = CliRunner().invoke(main, ["list", "strategies"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "name                          aliases          needs data     description"
    assert lines[1] == "global-magnitude              GlobalMagWeight  no             |w|, ranked over the whole network"
    assert lines[8] == "layer-random                  -                no             " \
                       "an exact count of uniformly random weights (ShrinkBench: a Bernoulli draw per weight), " \
                       "the same fraction kept in every layer"
    assert lines[10] == "layer-channel-l1              channel-l1       yes            " \
                        "whole channels by mean |w| of each channel's filters (Li et al. 2017), " \
                        "the same fraction removed in every layer"
    assert lines[15:] == [
        "random-matched:<strategy>     -                as <strategy>  "
        "random weights, with exactly the per-layer sparsities <strategy> gives the dense model "
        "(at each round of a schedule)",
        "magnitude-matched:<strategy>  -                as <strategy>  "
        "|w|, with exactly the per-layer sparsities <strategy> gives the dense model (at each round of a schedule)",
    ]
