#!/usr/bin/env bash
# The wheels that stage 2 on a device machine needs beyond its image (which has torch, accelerate, peft,
# pandas, pyarrow, huggingface-hub, typer, rich, tensorboard, pytest), for Python 3.12 on x86-64, into .whl/
# (git-ignored; name .whl in the device tool's carry). Versions are those this project's CI tests with;
# tools/gpu/check.sh installs them. The openai backend's packages are left out (not needed for the trainer's own
# generation), and so is vLLM: its wheel, with the torch build it pins, is far over the 64 MiB a device call
# carries.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .whl && mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl \
    trl==1.16.0 transformers==5.24.0 tokenizers==0.23.3 datasets==5.2.0 dill==0.4.1 \
    multiprocess==0.70.19 xxhash==4.1.0 fsspec==2026.9.0 sqlparse==0.6.1
du -sh .whl
