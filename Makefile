# apt-ostree: `make demo` and `make check` on a fresh Debian 12 machine, as root.
.PHONY: deps check test unit lint demo bench clean

deps:
	./scripts/setup-deps

check: deps
	.venv/bin/pytest -v tests

unit: deps
	.venv/bin/pytest -v -m "not root and not network" tests

lint: deps
	.venv/bin/ruff check src tests bench
	.venv/bin/mypy

demo: deps
	./scripts/demo

bench: deps
	./bench/run-all

clean:
	rm -rf .venv build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
