"""Within a phase, plugins run in the order deploy.yml lists them."""

from __future__ import annotations


def test_plugins_run_in_the_order_deploy_yml_lists_them(fap_local, fap_run):
    for name in ("alpha", "beta", "gamma"):
        (fap_local.root / f"{name}.py").write_text(
            "from fapistrano import hookimpl\n"
            "@hookimpl\n"
            "def fap_deploy_updated(ctx):\n"
            f"    ctx.log('{name} ran')\n"
        )
    fap_local.write_deployfile({"plugins": ["gamma", "alpha", "beta"]})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    ran = [line.split(" | ")[-1] for line in result.stdout.splitlines() if line.endswith(" ran")]
    assert ran == ["gamma ran", "alpha ran", "beta ran"]
