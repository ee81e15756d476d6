"""The dependencies example's application: a command line that needs click."""

from importlib.metadata import version

import click


@click.command()
@click.option("--name", default="world", help="Who to greet.")
def main(name):
    """Greet NAME, saying which click this release's venv holds."""
    click.echo(f"Hello, {name}! (click {version('click')})")


if __name__ == "__main__":
    main()
