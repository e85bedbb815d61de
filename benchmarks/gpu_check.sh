#!/usr/bin/env bash
# One prepared GPU check (<= 8 minutes on one GPU): the DeepSpeed/FSDP training paths and a
# vLLM deployment, through chattune's own job and endpoint APIs, one line per check:
#   PASS|FAIL <check> <figures>
# 1. DeepSpeed ZeRO-2 LoRA step, SmolLM2-135M-Instruct, bf16 (NCCL, 1 process)
# 2. DeepSpeed ZeRO-3 LoRA step, same
# 3. FSDP LoRA step, same
# 4. vLLM (GPU) deployment of SmolLM2: /score and streamed /v1/chat/completions via the gateway
# Needs: CUDA, `pip install -e '.[dev,deepspeed]'` (DS_BUILD_OPS=0), `chattune assets fetch`.
# Usage: bash benchmarks/gpu_check.sh   (exit status: the number of failed checks)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=$(mktemp -d /tmp/chattune-gpu-check.XXXXXX)
export CHATTUNE_WORKSPACE="$WORK/ws"
fails=0

"$PY" - "$WORK" <<'PYEOF' || fails=$((fails + $?))
import sys, time
from pathlib import Path

from chattune import Client

work = Path(sys.argv[1])
client = Client(work / "ws")
client.data.download("ultrachat-sample", split_pc=5, out=work / "data")
data = {"train": str(work / "data/train_sft.jsonl"), "test": str(work / "data/test_sft.jsonl")}
base = {
    "max_steps": 2, "save_steps": 2, "logging_steps": 1, "max_seq_length": 512,
    "precision": "bf16", "evaluation_strategy": "no", "generation_eval_rows": 0, "seed": 7,
}
checks = {
    "deepspeed-zero2-lora-bf16": {"apply_deepspeed": True, "deepspeed_stage": 2},
    "deepspeed-zero3-lora-bf16": {"apply_deepspeed": True, "deepspeed_stage": 3},
    "fsdp-lora-bf16": {"fsdp": True},
}
failed = 0
for name, params in checks.items():
    started = time.monotonic()
    spec = {"name": name, "model": "SmolLM2-135M-Instruct", "data": data,
            "parameters": base | params}
    try:
        job = client.jobs.wait(client.jobs.create(spec).name, timeout=150)
        ok = job.status == "completed"
        final = client.jobs.metrics(name)["final"] if ok else {}
        detail = f"loss={final.get('loss', float('nan')):.4f} test_loss={final.get('test_loss', float('nan')):.4f}" if ok else (job.error or "").splitlines()[0][:200]
    except Exception as exc:  # one line per check, whatever happens
        ok, detail = False, f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    failed += not ok
    print(f"{'PASS' if ok else 'FAIL'} {name} {detail} {time.monotonic() - started:.0f}s", flush=True)
sys.exit(failed)
PYEOF

"$PY" - <<'PYEOF' || fails=$((fails + $?))
import json, time

import httpx

from chattune.catalog import assets
from chattune.serving import vllm_env
from chattune.serving.endpoints import EndpointsAPI
from chattune.workspace import Workspace
import os

started = time.monotonic()
name = "vllm-gpu-score-and-stream"
api = None
try:
    smol = assets.fetch(["SmolLM2-135M-Instruct"])["SmolLM2-135M-Instruct"]
    vllm_env.install()  # idempotent; a GPU build of vLLM the first time
    api = EndpointsAPI(Workspace.init(os.environ["CHATTUNE_WORKSPACE"]), resolve_model=lambda ref: (ref, smol))
    endpoint = api.create("gpu-ep")
    api.create_deployment("gpu-ep", "fast", "smol:1", engine="vllm")
    api.update("gpu-ep", traffic={"fast": 100})
    key = {"Authorization": f"Bearer {api.get_keys('gpu-ep')['primary_key']}"}
    score = {"input_data": {"input_string": [[{"role": "user", "content": "Name a color."}]],
                            "parameters": {"max_new_tokens": 8}}, "params": {}}
    scored = httpx.post(endpoint.scoring_uri, json=score, headers=key, timeout=120)
    assert scored.status_code == 200 and scored.json()["output"], scored.text[:200]
    body = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 6, "stream": True,
            "stream_options": {"include_usage": True}}
    url = endpoint.openai_base_url + "/chat/completions"
    with httpx.stream("POST", url, json=body, headers=key, timeout=120) as s:
        events = [line for line in s.iter_lines() if line.startswith("data: ")]
    assert events and events[-1] == "data: [DONE]", events[-3:]
    tokens = json.loads(events[-2][6:])["usage"]["completion_tokens"]
    print(f"PASS {name} score_ok stream_chunks={len(events)} completion_tokens={tokens} "
          f"{time.monotonic() - started:.0f}s", flush=True)
    code = 0
except Exception as exc:
    print(f"FAIL {name} {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''} "
          f"{time.monotonic() - started:.0f}s", flush=True)
    code = 1
finally:
    if api is not None:
        for info in api.list():
            api.delete(info.name)
raise SystemExit(code)
PYEOF

rm -rf "$WORK"
exit "$fails"
