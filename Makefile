.PHONY: help install run test lint bench
help:  ## list targets
	@grep -E '^[a-z]+:.*## ' Makefile | sed 's/:.*## /\t/'
install:  ## create .venv with mbcnav and dev tools
	scripts/install
run:  ## show options for a bundled example profile
	scripts/run
test:  ## lint, type-check and run the whole test suite
	scripts/test
lint:  ## ruff + mypy + knowledge-base lint
	.venv/bin/ruff check src tests benchmarks && .venv/bin/mypy && .venv/bin/mbcnav kb lint
bench:  ## print engine, web and cohort speed figures
	.venv/bin/python benchmarks/recommend.py
	.venv/bin/python benchmarks/web.py
	.venv/bin/python benchmarks/cohort.py --sizes 1000000
