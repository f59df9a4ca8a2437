# Two entry points: `make demo` (the control plane on an embedded local AWS)
# and `make test` (lint, types, the whole test suite with coverage).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# pip repeats one warning per package for index mirrors missing on some machines
PIP_NOISE_FILTER := { grep -v -e '^WARNING: Location' -e 'is ignored: it is neither' || true; }
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled

.PHONY: demo test lint typecheck unit install synth clean tools lock

# The whole control plane on an embedded local AWS, narrated; exits 0 only if every step checked out.
demo: install
	$(PY) -m sandbox.demo

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	set -o pipefail; { $(PY) -m pip install --quiet --upgrade pip && \
	  $(PY) -m pip install --quiet -e ".[dev,infra,sandbox]"; } 2>&1 | $(PIP_NOISE_FILTER)
	touch $@

install: $(VENV)/.installed

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: install
	$(PY) -m mypy

# pytest exits 5 when it collects nothing: that is a broken suite, say so.
# The tests run against the real API server and webhook: `tools` builds what is missing.
test: lint typecheck tools
	$(PY) -m pytest --cov --cov-report=term --cov-report=xml:coverage.xml; status=$$?; \
	  if [ $$status -eq 5 ]; then echo "FAIL: pytest collected no tests"; exit 1; fi; \
	  test $$status -eq 0
	set -o pipefail; $(PY) -m coverage report --include='functions/core/*' --fail-under=90 \
	  --no-skip-covered | tail -1 | sed 's/^TOTAL/functions\/core coverage (>= 90% required):/'

# The real Kubernetes parts (kube-apiserver, etcd, kubectl, the pod identity webhook),
# pinned in tools/*/go.mod and built from the Go module proxy into .tools/bin.
tools:
	bash tools/build.sh

# Re-resolve every deployable's lock file (locks/*.txt, hashes included) from
# pyproject.toml's ranges; needs the package index. `make test` fails while a lock
# is older than pyproject's dependency sets. `make lock ONLY="agent map-sync"`
# re-resolves just those.
lock: install
	$(PY) -m infra.locks $(ONLY)

# cdk synth without the CDK CLI: templates in cdk.out, cdk-nag enforced
synth: install
	CDK_OUTDIR=cdk.out $(PY) app.py

unit: install
	$(PY) -m pytest tests/unit -q

clean:
	rm -rf $(VENV) .tools cdk.out .build .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage coverage.xml
