"""mitogen_linear: Mitogen's linear strategy (PyPI `mitogen`, in the controller's
venv, requirements.txt) under a path the scenarios' ansible.cfg can name without
knowing where site-packages is. Molecule's docker scenarios run with it (hosts
reached with `ansible_connection: docker`, which Mitogen replaces by its own
transport); MOLECULE_ANSIBLE_STRATEGY=linear runs them with plain Ansible."""

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

__all__ = ["StrategyModule"]
