# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench browser clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools<82' wheel
	# torch first: these exact releases are served from local files; a looser pin downloads a multi-GB build
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/quickstart_digits.py

# Two processes (pytest-xdist); the tests that start NNI's manager run in one of them, one after another
test: $(STAMP) browser
	$(PY) -m pytest -q -n 2 --dist loadgroup tests

# Every benchmark (about 2 hours 30 minutes on 2 cores), then docs/benchmarks.md and its plots
bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# Headless Chromium for the web UI test (Debian packages; skipped with a notice when not root)
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
		else \
			echo "chromium/chromedriver missing and not root: the browser part of the web UI test is skipped"; \
		fi; \
	fi

clean:
	rm -rf $(VENV) *.egg-info
