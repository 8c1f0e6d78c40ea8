#!/usr/bin/env bash
# The commands behind docs/benchmarks.md, one section per figure group.
#   bash scripts/benchmarks.sh SECTION...      (sections: foundation verify smol-speed rasd-smol rapid-smol
#                                               rapid-smol-speed qwen-speed rasd-qwen rapid-qwen rapid-extra identity-extra
#                                               identity-more identity-gaps identity-qwen-sets rasd-skip rasd-retrieval qwen-summarization qwen-rag qwen-squad-longdoc gate-weak-sources rasd-idle retrieval-speed qwen-speed-copy
#                                               rapid-8k identity-qwen-squad-longdoc rasd-probe rasd-conf rasd-resume ceiling rapid-qwen rapid-qwen-speed rapid-speed-v2
#                                               rapid-curve-v2 rapid-speed-eos other-sets
#                                               rapid-curve-eos rapid-qwen-curve gate-memory rasd-memory rapid-qwen-pair rapid-qwen-pair-6 qwen-longdoc-rapid
#                                               rapid-pld-qwen rapid-pld-smollm2 identity-qwen-prd screen identity-screen
#                                               drafter-quant eval-tail-avx512 siblings rapid-eta-speed rapid-qwen-pair-next6 grid attention grid8
#                                               rasd5 f32-drafter-eval rapid-qwen-curve8 rapid-gate tree-mal identity-qwen-stack
#                                               rapid-smol-curve8 rapid-smol-next6 rapid-smol-conf rapid-smol-conf-eval
#                                               rapid-smol-conf-curve rapid-qwen-assisted rasd-ablation8 verify5
#                                               quick)
# Results go to bench-out/. Run on an otherwise idle machine: speeds are ratios within one run, but a busy
# machine still adds noise. Needs `make models` plus `ragspec models pull qwen2.5-coder-0.5b` and
# `ragspec models pull qwen2.5-coder-1.5b` for the Qwen sections.
set -euo pipefail
cd "$(dirname "$0")/.."
R=.venv/bin/ragspec
OUT=bench-out
mkdir -p "$OUT"
SMOL=smollm2-135m
QT=qwen2.5-coder-1.5b
QD=qwen2.5-coder-0.5b
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

foundation() {
  log "model second load"
  .venv/bin/python - <<'EOF' | tee "$OUT/model-load.txt"
import time
t = time.perf_counter()
from ragspec.models.loader import load_causal_lm
t0 = time.perf_counter()
lm = load_causal_lm("smollm2-135m")
print(f"imports {t0 - t:.2f} s, load_causal_lm('smollm2-135m') {time.perf_counter() - t0:.2f} s")
EOF
  log "retrieval"
  $R bench retrieval data/squad --json "$OUT/retrieval-squad.json"
  $R bench retrieval data/hotpotqa --json "$OUT/retrieval-hotpotqa.json"
  log "eval rag"
  $R eval data/squad --method rag --limit 100 --model $SMOL --json "$OUT/eval-squad-rag-smollm2.json"
  $R eval data/squad --method rag --limit 100 --model $QT --json "$OUT/eval-squad-rag-qwen15.json"
}

verify() {
  $R bench verify --model $SMOL --contexts 1024,4096,8000 --tokens 1,4,8,16,32 --json "$OUT/verify-smollm2.json"
  $R bench verify --model $QT --contexts 1024,4096,8000 --tokens 1,4,8,16,32 --reps 3 --json "$OUT/verify-qwen15.json"
}

SETS="squad-longdoc rag summarization humaneval mt_bench qa math_reasoning translation"

smol-speed() {
  local methods=hf-greedy,hf-pld,hf-assisted,greedy,pld,rest,recycle,draft,pld+rest,pld+recycle,rasd
  for s in $SETS; do
    log "smollm2 speed $s"
    $R bench speed --data "$s" --model $SMOL --drafter $SMOL --methods $methods --limit 12 --max-new-tokens 128 \
      --json "$OUT/speed-smollm2-$s.json" --plot "$OUT/speed-smollm2-$s.png"
  done
}

rasd-smol() {  # identity on 50 prompts per set (retrieval sources alone: a same-size drafter cannot pay)
  for s in humaneval summarization rag squad-longdoc mt_bench; do
    log "smollm2 rasd identity $s"
    $R bench speed --data "$s" --model $SMOL --methods greedy,rasd --limit 50 --max-new-tokens 128 \
      --json "$OUT/rasd-identity-smollm2-$s.json"
  done
}

rapid-smol() {
  $R data longdoc --out "$OUT/longdoc-smollm2-7500" --tokens 7500 --limit 200 --model $SMOL
  $R eval "$OUT/longdoc-smollm2-7500" --method lc,rag,rapid --eta 0,5,10,20,40 --model $SMOL --drafter $SMOL \
    --max-new-tokens 24 --json "$OUT/rapid-eval-smollm2.json"
}

rapid-smol-speed() {  # docs/benchmarks.md "Speedup against context length"; the 7500 set comes from rapid-smol
  for t in 2000 4000 7500; do
    [ -d "$OUT/longdoc-smollm2-$t" ] || \
      $R data longdoc --out "$OUT/longdoc-smollm2-$t" --tokens $t --limit 20 --model $SMOL --max-articles 4
    $R bench speed --data "longdoc:$OUT/longdoc-smollm2-$t" --model $SMOL --drafter $SMOL \
      --methods hf-greedy,hf-assisted,greedy,pld,rapid:eta=0,rapid:eta=10 --limit 4 --max-new-tokens 64 \
      --json "$OUT/rapid-speed-smollm2-$t.json"
  done
  $R bench plot "$OUT"/rapid-speed-smollm2-{2000,4000,7500}.json --out docs/img/rapid-speed-smollm2.png
}

qwen-speed() {
  local methods=hf-greedy,hf-pld,hf-assisted,greedy,pld,rest,draft,pld+rest,pld+draft,rasd
  for s in $SETS; do
    local n=6
    case $s in qa|math_reasoning|translation) n=3 ;; esac
    log "qwen speed $s"
    $R bench speed --data "$s" --model $QT --drafter $QD --methods $methods --limit $n --max-new-tokens 64 \
      --json "$OUT/speed-qwen-$s.json" --plot "$OUT/speed-qwen-$s.png"
  done
}

rasd-qwen() {  # the pruning and overlap ablation
  local methods=greedy,pld,rest,draft,rasd:prune=none,rasd:prune=topk,k=4,rasd:prune=threshold,threshold=0.05,rasd,rasd:overlap=0
  for s in rag summarization humaneval; do
    log "qwen rasd ablation $s"
    $R bench speed --data "$s" --model $QT --drafter $QD --methods "$methods" --limit 6 --max-new-tokens 64 \
      --json "$OUT/rasd-ablation-qwen-$s.json"
  done
}

identity-extra() {  # the 50-prompt identity runs on summarization and squad-longdoc (docs/benchmarks.md)
  $R bench speed --data summarization --model $SMOL --methods greedy,pld,rest,rasd --limit 50 --max-new-tokens 64 \
    --json "$OUT/identity-smollm2-summarization.json"
  $R bench speed --data squad-longdoc --model $SMOL --methods greedy,pld,rasd --limit 50 --max-new-tokens 32 \
    --json "$OUT/identity-smollm2-squad-longdoc.json"
}

identity-more() {  # 50-prompt identity: humaneval and mt_bench (SmolLM2), rag for the Qwen pair
  for s in humaneval mt_bench; do
    $R bench speed --data $s --model $SMOL --methods greedy,pld,rest,pld+recycle,rasd --limit 50 \
      --max-new-tokens 64 --json "$OUT/identity-smollm2-$s.json"
  done
  $R bench speed --data rag --model $QT --drafter $QD --methods greedy,pld,draft,rasd --limit 50 \
    --max-new-tokens 32 --json "$OUT/identity-qwen-rag.json"
  $R bench speed --data summarization --model $QT --drafter $QD --methods greedy,rasd --limit 50 \
    --max-new-tokens 32 --json "$OUT/identity-qwen-summarization.json"
}

identity-gaps() {  # 50-prompt identity for the lossless methods not covered above (rag)
  $R bench speed --data rag --model $QT --drafter $QD --methods greedy,rest,recycle,pld+recycle,pld+rest,pld+draft \
    --limit 50 --max-new-tokens 32 --json "$OUT/identity-qwen-rag-more.json"
  $R bench speed --data rag --model $SMOL --drafter $SMOL --methods greedy,draft,pld+rest,pld+draft,pld+rest+draft \
    --limit 50 --max-new-tokens 64 --json "$OUT/identity-smollm2-rag-more.json"
}

identity-qwen-sets() {  # 50-prompt identity of RASD with the Qwen pair on humaneval and mt_bench
  for s in humaneval mt_bench; do
    $R bench speed --data $s --model $QT --drafter $QD --methods greedy,rasd \
      --limit 50 --max-new-tokens 32 --json "$OUT/identity-qwen-$s.json"
  done
}

rasd-skip() {  # RASD skipping the drafter's chain when retrieval covers the step, against skip=0 (Qwen pair)
  for s in summarization humaneval rag; do
    $R bench speed --data $s --model $QT --drafter $QD --methods hf-greedy,pld,draft,rasd:skip=0,rasd --limit 4 \
      --max-new-tokens 64 --json "$OUT/rasd-skip-qwen-$s.json"
  done
}

qwen-summarization() {  # the Qwen pair on 10 summarization prompts, every baseline and RASD in one run
  $R bench speed --data summarization --model $QT --drafter $QD \
    --methods hf-greedy,hf-pld,hf-assisted,greedy,pld,draft,rasd --limit 10 --max-new-tokens 64 \
    --json "$OUT/speed-qwen-summarization-10.json"
}

qwen-squad-longdoc() {  # the Qwen pair on 4 squad-longdoc prompts (5.6K tokens; about 4.5 minutes a prompt)
  $R bench speed --data squad-longdoc --model $QT --drafter $QD --methods hf-greedy,greedy,pld,draft,rasd \
    --limit 4 --max-new-tokens 64 --json "$OUT/speed-qwen-squad-longdoc-4.json"
}

qwen-rag() {  # the Qwen pair on 10 rag prompts, every baseline and RASD in one run
  $R bench speed --data rag --model $QT --drafter $QD \
    --methods hf-greedy,hf-pld,hf-assisted,greedy,pld,draft,rasd --limit 10 --max-new-tokens 64 \
    --json "$OUT/speed-qwen-rag-10.json"
}

rasd-retrieval() {  # SmolLM2: retrieval-only RASD (rank-calibrated pruning) against pld in one run
  for s in rag summarization humaneval squad-longdoc; do
    $R bench speed --data $s --model $SMOL --methods hf-greedy,greedy,pld,rasd --limit 10 --max-new-tokens 128 \
      --json "$OUT/rasd-retrieval-smollm2-$s.json"
  done
}

rasd-idle() {  # the Qwen pair: RASD with the drafter idling in copy streaks against rasd:idle=0, in one run per set
  for s in humaneval summarization rag mt_bench; do
    $R bench speed --data $s --model $QT --drafter $QD \
      --methods hf-greedy,hf-pld,greedy,pld,rest,draft,rasd:idle=0,rasd --limit 10 --max-new-tokens 64 \
      --json "$OUT/rasd-idle-qwen-$s.json"
  done
}

rapid-8k() {  # SmolLM2 self-speculation at 8K tokens of context (documents topped up with --fill)
  $R data longdoc --out "$OUT/longdoc-smollm2-8000" --tokens 8060 --limit 20 --model $SMOL --max-articles 4 --fill
  $R bench speed --data "longdoc:$OUT/longdoc-smollm2-8000" --model $SMOL --drafter $SMOL \
    --methods hf-greedy,hf-assisted,greedy,pld,rapid:eta=0,rapid:eta=10 --limit 6 --max-new-tokens 64 \
    --json "$OUT/rapid-speed-smollm2-8000.json"
  $R bench plot "$OUT"/rapid-speed-smollm2-{2000,4000,7500,8000}.json --out docs/img/rapid-speed-smollm2.png
}

identity-qwen-squad-longdoc() {  # 50-prompt identity of the Qwen pair on whole SQuAD articles (about 80 minutes)
  $R bench speed --data squad-longdoc --model $QT --drafter $QD --methods greedy,pld,rasd --limit 50 \
    --max-new-tokens 32 --json "$OUT/identity-qwen-squad-longdoc.json"
}

rasd-probe() {  # the Qwen pair: RASD with probe chains among skipped ones, against skip=0 and every single source
  for s in mt_bench summarization; do
    $R bench speed --data $s --model $QT --drafter $QD --methods hf-greedy,pld,draft,rasd:skip=0,rasd \
      --limit 10 --max-new-tokens 64 --json "$OUT/rasd-probe-qwen-$s.json"
  done
}

rasd-conf() {  # the Qwen pair: chain time and gain per bin of the drafter's confidence
  for s in mt_bench summarization humaneval; do
    $R bench speed --data $s --model $QT --drafter $QD --methods hf-greedy,pld,draft,rasd:skip=0,rasd \
      --limit 10 --max-new-tokens 64 --json "$OUT/rasd-conf-qwen-$s.json"
  done
}

rasd-resume() {  # the Qwen pair: a chain's gain counted in steps at the rate retrieval resumes after a miss
  for s in humaneval summarization mt_bench rag; do
    $R bench speed --data $s --model $QT --drafter $QD --methods hf-greedy,pld,draft,rasd:resume=0,rasd \
      --limit 10 --max-new-tokens 64 --json "$OUT/rasd-resume-qwen-$s.json"
  done
}

gate-weak-sources() {  # SmolLM2 rag: the weaker sources (REST, recycling) after the gate's ratio of averages
  $R bench speed --data rag --model $SMOL --methods hf-greedy,greedy,pld,rest,recycle,pld+rest,pld+recycle \
    --limit 10 --max-new-tokens 128 --json "$OUT/gate-weak-sources-smollm2-rag.json"
}

retrieval-speed() {  # SmolLM2, retrieval sources after the REST lookup speed-up (docs/benchmarks.md)
  for s in rag summarization humaneval squad-longdoc; do
    $R bench speed --data $s --model $SMOL --methods hf-greedy,hf-pld,greedy,pld,rest,pld+rest,rasd --limit 10 \
      --max-new-tokens 128 --json "$OUT/retrieval-speed-smollm2-$s.json"
  done
}

qwen-speed-copy() {  # the Qwen pair on summarization and humaneval (4 prompts) and squad-longdoc (2)
  for s in summarization humaneval; do
    $R bench speed --data $s --model $QT --drafter $QD \
      --methods hf-greedy,hf-pld,hf-assisted,greedy,pld,rest,draft,rasd --limit 4 --max-new-tokens 64 \
      --json "$OUT/speed-qwen-$s.json"
  done
  $R bench speed --data squad-longdoc --model $QT --drafter $QD --methods hf-greedy,hf-pld,greedy,pld,draft,rasd \
    --limit 2 --max-new-tokens 64 --json "$OUT/speed-qwen-squad-longdoc.json"
}

qwen-longdoc-eos() {  # the Qwen pair on squad-longdoc, 6 prompts, every method to 64 tokens (29 minutes)
  mkdir -p "$OUT/qwen-longdoc"
  $R bench speed --data squad-longdoc --model $QT --drafter $QD --methods hf-greedy,greedy,pld,draft,rasd \
    --limit 6 --max-new-tokens 64 --ignore-eos --json "$OUT/qwen-longdoc/speed-qwen-squad-longdoc-eos.json"
}

rapid-smollm2-12() {  # RAPID at 8K on 12 prompts (16 minutes); needs the set of rapid-speed-v2
  mkdir -p "$OUT/rapid12"
  $R bench speed --data "longdoc:$OUT/longdoc-smollm2-8000" --model $SMOL --drafter $SMOL \
    --methods hf-greedy,greedy,rapid:eta=0,rapid:eta=10 --limit 12 --max-new-tokens 64 \
    --json "$OUT/rapid12/rapid-speed-smollm2-8000-12.json"
}

rapid-extra() {  # the draft-length sweep and the Qwen 0.5B speed run of docs/benchmarks.md (RAPID)
  $R bench speed --data "longdoc:$OUT/longdoc-smollm2-7500" --model $SMOL --drafter $SMOL \
    --methods hf-greedy,greedy,rapid:eta=10,rapid:eta=10,confidence=0.3,rapid:eta=10,gamma=6,rapid:eta=10,gamma=6,confidence=0.3 \
    --limit 4 --max-new-tokens 64 --json "$OUT/rapid-tune-smollm2-7500.json"
  [ -d "$OUT/longdoc-qwen-16000" ] || \
    $R data longdoc --out "$OUT/longdoc-qwen-16000" --tokens 16000 --limit 200 --model $QD
  $R bench speed --data "longdoc:$OUT/longdoc-qwen-16000" --model $QD --drafter $QD \
    --methods hf-greedy,greedy,rapid:eta=0,rapid:eta=10 --limit 2 --max-new-tokens 64 \
    --json "$OUT/rapid-speed-qwen05-16000.json"
  $R eval "$OUT/longdoc-qwen-16000" --method lc,rag,rapid --eta 0,10,20 --model $QD --drafter $QD \
    --limit 8 --max-new-tokens 24 --json "$OUT/rapid-eval-qwen-self.json"
  $R eval "$OUT/longdoc-smollm2-7500" --method rapid --eta 10,40 --residual rapid --model $SMOL --drafter $SMOL \
    --limit 50 --max-new-tokens 24 --json "$OUT/rapid-eval-smollm2-residual-rapid.json"
}

ceiling() {  # copy-draft ceilings against measured pld and rasd (retrieval alone), SmolLM2, 3 sets
  for s in rag summarization squad-longdoc; do
    $R bench ceiling --data $s --model $SMOL --methods hf-greedy,pld,rasd --limit 10 --max-new-tokens 128 \
      --json "$OUT/ceiling-smollm2-$s.json"
  done
}

rapid-qwen() {  # RAPID quality, Qwen 0.5B target: self (0.5B drafter) and upward (1.5B drafter), 200 questions
  # about 3.5 hours on 2 cores; --resume continues a run cut short from its .rows.jsonl
  $R data longdoc --out "$OUT/longdoc-qwen-16000" --tokens 16000 --limit 200 --model $QD
  $R eval "$OUT/longdoc-qwen-16000" --method lc,rag,rapid --eta 0,5,10,20,40 --model $QD --drafter $QD,$QT \
    --max-new-tokens 24 --json "$OUT/rapid-eval-qwen-200.json" --resume
}

rapid-qwen-speed() {  # RAPID speed, Qwen 0.5B self-speculation at 16K tokens (6 prompts, then 12 without hf-assisted)
  $R data longdoc --out "$OUT/longdoc-qwen-16000" --tokens 16000 --limit 200 --model $QD
  $R bench speed --data "longdoc:$OUT/longdoc-qwen-16000" --model $QD --drafter $QD \
    --methods hf-greedy,hf-assisted,greedy,rapid:eta=0,rapid:eta=10,rapid:eta=20 --limit 6 --max-new-tokens 64 \
    --json "$OUT/rapid-speed-qwen05-16000-6.json"
  $R bench speed --data "longdoc:$OUT/longdoc-qwen-16000" --model $QD --drafter $QD \
    --methods hf-greedy,greedy,rapid:eta=10,rapid:eta=20 --limit 12 --max-new-tokens 64 \
    --json "$OUT/rapid-speed-qwen05-16000-12.json"
  $R data longdoc --out "$OUT/longdoc-qwen-32000" --tokens 32000 --limit 20 --model $QD --max-articles 8 --fill
  $R bench speed --data "longdoc:$OUT/longdoc-qwen-32000" --model $QD --drafter $QD \
    --methods hf-greedy,greedy,rapid:eta=10,rapid:eta=20 --limit 3 --max-new-tokens 64 \
    --json "$OUT/rapid-speed-qwen05-32000.json"
}

rapid-speed-v2() {  # RAPID speed re-measured with the first step's tokens left out (SmolLM2 8K, Qwen 0.5B 11-12K)
  $R data longdoc --out "$OUT/longdoc-smollm2-8000" --tokens 8060 --limit 20 --model $SMOL --max-articles 4 --fill
  $R bench speed --data "longdoc:$OUT/longdoc-smollm2-8000" --model $SMOL --drafter $SMOL \
    --methods hf-greedy,hf-assisted,greedy,pld,rapid:eta=0,rapid:eta=10 --limit 6 --max-new-tokens 64 \
    --json "$OUT/rapid-speed-smollm2-8000-v2.json"
  $R data longdoc --out "$OUT/longdoc-qwen-16000" --tokens 16000 --limit 200 --model $QD
  $R bench speed --data "longdoc:$OUT/longdoc-qwen-16000" --model $QD --drafter $QD \
    --methods hf-greedy,greedy,rapid:eta=10,rapid:eta=20 --limit 6 --max-new-tokens 64 \
    --json "$OUT/rapid-speed-qwen05-16000-6-v2.json"
  $R bench speed --data "longdoc:$OUT/longdoc-qwen-16000" --model $QD --drafter $QD \
    --methods hf-greedy,greedy,rapid:eta=10,rapid:eta=20 --limit 12 --max-new-tokens 64 \
    --json "$OUT/rapid-speed-qwen05-16000-12-v2.json"
}

rapid-curve-v2() {  # SmolLM2 RAPID speedup by context length (2K, 4K, 8K) in one session, first step left out
  $R bench verify --model $SMOL --backends fast --contexts 1024,4096,8000 --tokens 1,4,8,16,32 \
    --json "$OUT/verify-smollm2-v2.json"
  for t in 2000 4000; do
    $R data longdoc --out "$OUT/longdoc-smollm2-$t" --tokens $t --limit 20 --model $SMOL --max-articles 4
  done
  $R data longdoc --out "$OUT/longdoc-smollm2-8000" --tokens 8060 --limit 20 --model $SMOL --max-articles 4 --fill
  for t in 2000 4000 8000; do
    $R bench speed --data "longdoc:$OUT/longdoc-smollm2-$t" --model $SMOL --drafter $SMOL \
      --methods hf-greedy,hf-assisted,greedy,pld,rapid:eta=0,rapid:eta=10 --limit 6 --max-new-tokens 64 \
      --json "$OUT/rapid-speed-smollm2-$t-v3.json"
  done
  $R bench plot "$OUT"/rapid-speed-smollm2-{2000,4000,8000}-v3.json --out docs/img/rapid-speed-smollm2.png
}

rapid-speed-eos() {  # RAPID at 8K+ with every method run past EOS to 64 tokens (equal lengths for all)
  $R data longdoc --out "$OUT/longdoc-smollm2-8000" --tokens 8060 --limit 20 --model $SMOL --max-articles 4 --fill
  $R bench speed --data "longdoc:$OUT/longdoc-smollm2-8000" --model $SMOL --drafter $SMOL \
    --methods hf-greedy,hf-assisted,greedy,pld,rapid:eta=0,rapid:eta=10 --limit 6 --max-new-tokens 64 --ignore-eos \
    --json "$OUT/rapid-speed-smollm2-8000-eos.json"
  $R data longdoc --out "$OUT/longdoc-qwen-16000" --tokens 16000 --limit 200 --model $QD
  $R bench speed --data "longdoc:$OUT/longdoc-qwen-16000" --model $QD --drafter $QD \
    --methods hf-greedy,greedy,rapid:eta=10,rapid:eta=20 --limit 4 --max-new-tokens 64 --ignore-eos \
    --json "$OUT/rapid-speed-qwen05-16000-eos.json"
  $R data longdoc --out "$OUT/longdoc-qwen-32000" --tokens 32000 --limit 20 --model $QD --max-articles 8 --fill
  $R bench speed --data "longdoc:$OUT/longdoc-qwen-32000" --model $QD --drafter $QD \
    --methods hf-greedy,greedy,rapid:eta=10,rapid:eta=20 --limit 2 --max-new-tokens 64 --ignore-eos \
    --json "$OUT/rapid-speed-qwen05-32000-eos.json"
  # the Qwen plot is drawn by rapid-qwen-curve, from these two runs and its own three
}

other-sets() {  # the Spec-Bench categories no earlier run covered, both pairs (issue 3: report every set)
  local pair s
  for pair in "smollm2 $SMOL $SMOL pld+rest 10 128" "qwen $QT $QD pld+draft 6 64"; do
    set -- $pair  # name, target, drafter, the pair's combined method, prompts, new tokens
    for s in qa math_reasoning translation; do
      log "$1 speed $s"
      $R bench speed --data $s --model $2 --drafter $3 \
        --methods hf-greedy,hf-pld,hf-assisted,greedy,pld,rest,draft,$4,rasd --limit $5 --max-new-tokens $6 \
        --json "$OUT/speed-$1-$s.json"
    done
  done
}

rapid-curve-eos() {  # SmolLM2 at 2K and 4K with EOS ignored; with rapid-speed-eos's 8K run, the equal-length curve
  for t in 2000 4000; do
    [ -d "$OUT/longdoc-smollm2-$t" ] || \
      $R data longdoc --out "$OUT/longdoc-smollm2-$t" --tokens $t --limit 20 --model $SMOL --max-articles 4
    $R bench speed --data "longdoc:$OUT/longdoc-smollm2-$t" --model $SMOL --drafter $SMOL \
      --methods hf-greedy,hf-assisted,greedy,pld,rapid:eta=0,rapid:eta=10 --limit 6 --max-new-tokens 64 --ignore-eos \
      --json "$OUT/rapid-speed-smollm2-$t-eos.json"
  done
  $R bench plot "$OUT"/rapid-speed-smollm2-{2000,4000,8000}-eos.json --out docs/img/rapid-speed-smollm2-eos.png
}

rapid-qwen-curve() {  # Qwen 0.5B RAPID at 2K, 4K and 16K, documents topped up with --fill, EOS ignored; with
  # rapid-speed-eos's 9.1K and 32K runs, the five points of the Qwen plot
  for spec in "2000 4" "4000 4" "16000 6"; do
    set -- $spec  # document tokens, most articles per document
    [ -d "$OUT/longdoc-qwen-$1-fill" ] || \
      $R data longdoc --out "$OUT/longdoc-qwen-$1-fill" --tokens $1 --limit 20 --model $QD --max-articles $2 --fill
    $R bench speed --data "longdoc:$OUT/longdoc-qwen-$1-fill" --model $QD --drafter $QD \
      --methods hf-greedy,greedy,rapid:eta=10,rapid:eta=20 --limit 3 --max-new-tokens 64 --ignore-eos \
      --json "$OUT/rapid-speed-qwen05-$1-fill-eos.json"
  done
  $R bench plot "$OUT"/rapid-speed-qwen05-{2000-fill,4000-fill,16000,16000-fill,32000}-eos.json \
    --out docs/img/rapid-speed-qwen05.png
}

rapid-qwen-curve8() {  # Qwen 0.5B RAPID by context length with the 8-bit grids and the attention kernel:
  # 2K, 4K, 16K and 32K documents topped up with --fill, EOS ignored; the 9.1K point is grid8's run
  for spec in "2000 4 3" "4000 4 3" "16000 6 3" "32000 8 2"; do
    set -- $spec  # document tokens, most articles per document, prompts
    [ -d "$OUT/longdoc-qwen-$1-fill" ] || \
      $R data longdoc --out "$OUT/longdoc-qwen-$1-fill" --tokens $1 --limit 20 --model $QD --max-articles $2 --fill
    $R bench speed --data "longdoc:$OUT/longdoc-qwen-$1-fill" --model $QD --drafter $QD \
      --methods hf-greedy,greedy,rapid:eta=0,rapid:eta=10 --limit $3 --max-new-tokens 64 --ignore-eos \
      --json "$OUT/curve8/rapid-speed-qwen05-$1-fill-eos.json"
  done
  $R bench plot "$OUT"/curve8/rapid-speed-qwen05-{2000-fill,4000-fill}-eos.json "$OUT"/grid8/rapid-speed-qwen05-16000-eos.json \
    "$OUT"/curve8/rapid-speed-qwen05-{16000-fill,32000-fill}-eos.json --out docs/img/rapid-speed-qwen05-grid8.png
}

rapid-gate() {  # lossless RAPID (eta 0) with and without the fallback gate, Qwen 0.5B at 16K (curve8's set)
  $R bench speed --data "longdoc:$OUT/longdoc-qwen-16000-fill" --model $QD --drafter $QD \
    --methods greedy,rapid:eta=0,gate=0,rapid:eta=0 --limit 3 --max-new-tokens 64 --ignore-eos \
    --json "$OUT/curve8/rapid-gate-qwen05-16000-fill-eos.json"
}

tree-mal() {  # issue 4: the drafter's chain grown into top-k trees, alone and fused with retrieval (a replay)
  for s in summarization rag humaneval; do
    .venv/bin/python scripts/tree_mal.py --data $s --model $QT --drafter $QD --limit 5 --max-new-tokens 64 \
      --json "$OUT/curve8/tree-mal-qwen-$s.json"
  done
  .venv/bin/python scripts/tree_mal.py --data squad-longdoc --model $QT --drafter $QD --limit 5 --max-new-tokens 64 \
    --ignore-eos --json "$OUT/curve8/tree-mal-qwen-squad-longdoc.json"
}

identity-qwen-stack() {  # the Qwen pair's identity on 50 rag prompts after GridStack (fused layers on two grids)
  $R bench speed --data rag --model $QT --drafter $QD --methods hf-greedy,greedy,draft,rasd --limit 50 \
    --max-new-tokens 32 --json "$OUT/curve8/identity-qwen-rag.json"
}

gate-memory() {  # the gate's early loss call and its memory across requests; "before" = the same at 8958a7a
  $R bench speed --data rag --model $SMOL --drafter $SMOL --methods greedy,pld,rest,draft,pld+rest,rasd \
    --limit 10 --max-new-tokens 128 --json "$OUT/gate-memory-smollm2-rag.json"
  $R bench speed --data summarization --model $SMOL --drafter $SMOL --methods greedy,pld,pld+rest,rasd \
    --limit 10 --max-new-tokens 128 --json "$OUT/gate-memory-smollm2-summarization.json"
  $R bench speed --data qa --model $QT --drafter $QD --methods greedy,pld,rest,draft,rasd \
    --limit 6 --max-new-tokens 64 --json "$OUT/gate-memory-qwen-qa.json"
}

rasd-memory() {  # RASD with its state carried across prompts (one proposer per method per run), Qwen pair
  for s in rag summarization humaneval; do
    $R bench speed --data $s --model $QT --drafter $QD --methods hf-greedy,pld,draft,rasd --limit 10 \
      --max-new-tokens 64 --json "$OUT/rasd-memory-qwen-$s.json"
  done
}

rapid-qwen-pair() {  # RAPID with the Qwen pair (1.5B target on the whole document, 0.5B drafter on its chunks) at 8K (38 minutes)
  $R data longdoc --out "$OUT/longdoc-qwen-8000-fill" --tokens 8000 --limit 20 --model $QT --max-articles 4 --fill
  $R bench speed --data "longdoc:$OUT/longdoc-qwen-8000-fill" --model $QT --drafter $QD \
    --methods hf-greedy,hf-assisted,greedy,pld,draft,rapid:eta=0,rapid:eta=10 --limit 3 --max-new-tokens 64 \
    --ignore-eos --json "$OUT/rapid-speed-qwen-pair-8000-eos.json"
}

rapid-qwen-pair-6() {  # the same, lossless RAPID only, on 6 prompts (65 minutes)
  $R data longdoc --out "$OUT/longdoc-qwen-8000-fill" --tokens 8000 --limit 20 --model $QT --max-articles 4 --fill
  $R bench speed --data "longdoc:$OUT/longdoc-qwen-8000-fill" --model $QT --drafter $QD \
    --methods hf-greedy,hf-assisted,greedy,pld,rapid:eta=0 --limit 6 --max-new-tokens 64 \
    --ignore-eos --json "$OUT/rapid-speed-qwen-pair-8000-eos-6.json"
}

qwen-longdoc-rapid() {  # the Qwen pair on squad-longdoc with RAPID at eta 0 (lossless), its drafter on chunks (29 minutes)
  mkdir -p "$OUT/qwen-longdoc"
  $R bench speed --data squad-longdoc --model $QT --drafter $QD --methods hf-greedy,greedy,pld,rasd,rapid:eta=0 \
    --limit 6 --max-new-tokens 64 --ignore-eos --json "$OUT/qwen-longdoc/speed-qwen-squad-longdoc-rapid.json"
}

rapid-pld-qwen() {  # RAPID fused with prompt lookup (rapid:eta=0,pld=1), the Qwen pair: 8K set, then squad-longdoc (62 minutes)
  mkdir -p "$OUT/rapid-pld"
  [ -d "$OUT/longdoc-qwen-8000-fill" ] || $R data longdoc --out "$OUT/longdoc-qwen-8000-fill" --tokens 8000 --limit 20 \
    --model $QT --max-articles 4 --fill
  $R bench speed --data "longdoc:$OUT/longdoc-qwen-8000-fill" --model $QT --drafter $QD \
    --methods hf-greedy,hf-assisted,greedy,pld,rapid:eta=0,rapid:eta=0,pld=1 --limit 3 --max-new-tokens 64 --ignore-eos \
    --json "$OUT/rapid-pld/rapid-pld-qwen-pair-8000-eos.json"
  $R bench speed --data squad-longdoc --model $QT --drafter $QD \
    --methods hf-greedy,greedy,pld,rasd,rapid:eta=0,rapid:eta=0,pld=1 --limit 6 --max-new-tokens 64 --ignore-eos \
    --json "$OUT/rapid-pld/rapid-pld-qwen-squad-longdoc.json"
}

rapid-pld-smollm2() {  # the same fusion with SmolLM2 as its own drafter at 8K (17 minutes)
  mkdir -p "$OUT/rapid-pld"
  [ -d "$OUT/longdoc-smollm2-8000" ] || $R data longdoc --out "$OUT/longdoc-smollm2-8000" --tokens 8060 --limit 20 \
    --model $SMOL --max-articles 4 --fill
  $R bench speed --data "longdoc:$OUT/longdoc-smollm2-8000" --model $SMOL --drafter $SMOL \
    --methods hf-greedy,hf-assisted,greedy,pld,rapid:eta=0,rapid:eta=0,pld=1,rapid:eta=10 --limit 6 \
    --max-new-tokens 64 --ignore-eos --json "$OUT/rapid-pld/rapid-pld-smollm2-8000-eos.json"
}

identity-qwen-prd() {  # 50-prompt identity of pld+rest+draft with the Qwen pair (rag), the last lossless gap
  $R bench speed --data rag --model $QT --drafter $QD --methods greedy,pld+rest+draft \
    --limit 50 --max-new-tokens 32 --json "$OUT/identity-qwen-rag-prd.json"
}

identity-screen() {  # 50-prompt identity with the int8-screened output layer, against transformers' greedy too
  mkdir -p "$OUT/screen"
  $R bench speed --data rag --model $SMOL --methods hf-greedy,greedy,pld,rest,pld+rest,rasd --limit 50 \
    --max-new-tokens 64 --json "$OUT/screen/identity-smollm2-rag.json"
  $R bench speed --data rag --model $QT --drafter $QD --methods hf-greedy,greedy,draft --limit 50 \
    --max-new-tokens 32 --json "$OUT/screen/identity-qwen-rag.json"
}

drafter-quant() {  # drafter copies: fidelity and step time, then RAPID at 8K with each, then the Qwen pair on rag
  mkdir -p "$OUT/f32pf"
  for m in $SMOL $QD; do .venv/bin/python scripts/drafter_fidelity.py $m; done
  for q in int8 int4; do
    $R bench speed --data "longdoc:$OUT/longdoc-smollm2-8000" --model $SMOL --drafter $SMOL --drafter-quant $q \
      --methods hf-greedy,hf-assisted,greedy,pld,rapid:eta=0,rapid:eta=10 --limit 6 --max-new-tokens 64 --ignore-eos \
      --json "$OUT/f32pf/rapid-speed-smollm2-8000-eos-$q.json"
  done
  $R bench speed --data rag --model $QT --drafter $QD --methods hf-greedy,greedy,draft,rasd --limit 10 \
    --max-new-tokens 64 --json "$OUT/f32pf/speed-qwen-rag.json"
  for s in rag summarization; do
    $R bench speed --data $s --model $SMOL --drafter $SMOL --drafter-quant int4 \
      --methods hf-greedy,hf-pld,greedy,pld,rest,draft,rasd --limit 10 --max-new-tokens 128 \
      --json "$OUT/f32pf/rasd-int4-smollm2-$s.json"
  done
}

screen() {  # the int8-screened output layer: forwards on real text with full logits and argmax only, then end to end
  mkdir -p "$OUT/screen"
  for m in $SMOL $QT; do
    for c in 1000 4000; do .venv/bin/python scripts/screen_probe.py $m $c 40; done
  done
  $R bench speed --data rag --model $SMOL --methods hf-greedy,greedy,pld,rasd --limit 10 --max-new-tokens 128 \
    --json "$OUT/screen/speed-smollm2-rag.json"
  for s in summarization rag; do
    $R bench speed --data $s --model $QT --drafter $QD --methods hf-greedy,greedy,pld,draft,rasd --limit 10 \
      --max-new-tokens 64 --json "$OUT/screen/speed-qwen-$s.json"
  done
  $R bench speed --data squad-longdoc --model $SMOL --methods hf-greedy,greedy,pld --limit 10 --max-new-tokens 64 \
    --json "$OUT/screen/speed-smollm2-squad-longdoc.json"
}

eval-tail-avx512() {  # the SmolLM2 answer-quality run's questions 125-200 again on an AVX-512 CPU (about 15 minutes)
  $R data longdoc --out "$OUT/longdoc-smollm2-7500" --tokens 7500 --limit 200 --model $SMOL
  mkdir -p "$OUT/avx512"
  head -124 docs/results/rapid-eval-smollm2-200-f32pf.rows.jsonl > "$OUT/avx512/rapid-eval-smollm2-200.rows.jsonl"
  $R eval "$OUT/longdoc-smollm2-7500" --method lc,rag,rapid --eta 0,5,10,20,40 --model $SMOL --drafter $SMOL \
    --max-new-tokens 24 --json "$OUT/avx512/rapid-eval-smollm2-200.json" --resume
}

siblings() {  # the drafter's second choice at every depth (draft:k=2, rasd:tree=2), Qwen pair
  mkdir -p "$OUT/siblings"
  for s in summarization rag; do
    $R bench speed --data $s --model $QT --drafter $QD \
      --methods hf-greedy,greedy,pld,draft,draft:k=2,rasd,rasd:tree=2 --limit 10 --max-new-tokens 64 \
      --json "$OUT/siblings/speed-qwen-$s.json"
  done
}

rapid-eta-speed() {  # SmolLM2 RAPID at 8K at the etas that reached LC + 3 in answer quality (20, 40), beside the default
  $R data longdoc --out "$OUT/longdoc-smollm2-8000" --tokens 8060 --limit 20 --model $SMOL --max-articles 4 --fill
  $R bench speed --data "longdoc:$OUT/longdoc-smollm2-8000" --model $SMOL --drafter $SMOL \
    --methods hf-greedy,hf-assisted,greedy,rapid:eta=10,rapid:eta=20,rapid:eta=40 --limit 6 --max-new-tokens 64 \
    --ignore-eos --json "$OUT/avx512/rapid-eta-speed-smollm2-8000-eos.json"
}

rapid-qwen-pair-next6() {  # lossless RAPID with the Qwen pair at 8K on the set's prompts 7-12 (a fresh sample; about an hour)
  $R data longdoc --out "$OUT/longdoc-qwen-8000-fill" --tokens 8000 --limit 20 --model $QT --max-articles 4 --fill
  $R bench speed --data "longdoc:$OUT/longdoc-qwen-8000-fill" --model $QT --drafter $QD \
    --methods hf-greedy,hf-assisted,greedy,rapid:eta=0 --limit 6 --skip 6 --max-new-tokens 64 --ignore-eos \
    --json "$OUT/avx512/rapid-speed-qwen-pair-8000-eos-next6.json"
}

grid() {  # float32 weights on 4-bit grids read through their codes (models/grid.py): the runs of 2026-12-02, evening
  mkdir -p "$OUT/grid"
  for g in 1 0; do
    RAGSPEC_GRID=$g $R bench verify --model $SMOL --backends fast --contexts 1024,4096,8000 --tokens 1,4,8,16,32 --reps 5 \
      --json "$OUT/grid/verify-smollm2-grid$g-v2.json"
    RAGSPEC_GRID=$g $R bench verify --model $QT --backends fast --contexts 1024,4096 --tokens 1,2,4,8,16,32 --reps 3 \
      --json "$OUT/grid/verify-qwen15-grid$g.json"
  done
  for s in summarization rag; do
    $R bench speed --data $s --model $QT --drafter $QD --methods hf-greedy,greedy,pld,draft,rasd --limit 10 \
      --max-new-tokens 64 --json "$OUT/grid/speed-qwen-$s.json"
  done
  $R bench speed --data squad-longdoc --model $QT --drafter $QD --methods hf-greedy,greedy,pld,rasd --limit 6 \
    --max-new-tokens 64 --ignore-eos --json "$OUT/grid/speed-qwen-squad-longdoc-eos.json"
  for s in rag summarization; do
    $R bench speed --data $s --model $SMOL --methods hf-greedy,greedy,pld,rasd --limit 10 --max-new-tokens 128 \
      --json "$OUT/grid/speed-smollm2-$s.json"
  done
  $R bench speed --data squad-longdoc --model $SMOL --methods hf-greedy,greedy,pld,rasd --limit 10 --max-new-tokens 64 \
    --json "$OUT/grid/speed-smollm2-squad-longdoc.json"
  $R bench speed --data rag --model $SMOL --methods hf-greedy,greedy,pld,rest,pld+rest,rasd --limit 50 \
    --max-new-tokens 64 --json "$OUT/grid/identity-smollm2-rag.json"
  $R bench speed --data rag --model $QT --drafter $QD --methods hf-greedy,greedy,draft,rasd --limit 50 \
    --max-new-tokens 32 --json "$OUT/grid/identity-qwen-rag.json"
  $R data longdoc --out "$OUT/longdoc-smollm2-8000" --tokens 8060 --limit 20 --model $SMOL --max-articles 4 --fill
  for t in 2000 4000; do
    [ -d "$OUT/longdoc-smollm2-$t" ] || \
      $R data longdoc --out "$OUT/longdoc-smollm2-$t" --tokens $t --limit 20 --model $SMOL --max-articles 4
  done
  rapid_smol_curve grid 8000 2000 4000
}

rapid-smol-curve8() {  # SmolLM2 drafting for itself at 8K, 4K, 2K with the 8-bit grids, at the default eta and at the
  # etas that reached LC + 3 F1 (20, 40): is one eta both +3 F1 and 2.5x hf-greedy? (then the plot)
  mkdir -p "$OUT/curve8"
  $R data longdoc --out "$OUT/longdoc-smollm2-8000" --tokens 8060 --limit 20 --model $SMOL --max-articles 4 --fill
  local t
  for t in 2000 4000; do
    [ -d "$OUT/longdoc-smollm2-$t" ] || \
      $R data longdoc --out "$OUT/longdoc-smollm2-$t" --tokens $t --limit 20 --model $SMOL --max-articles 4
  done
  for t in 8000 4000 2000; do
    $R bench speed --data "longdoc:$OUT/longdoc-smollm2-$t" --model $SMOL --drafter $SMOL \
      --methods hf-greedy,hf-assisted,greedy,rapid:eta=0,rapid:eta=10,rapid:eta=20,rapid:eta=40 --limit 6 \
      --max-new-tokens 64 --ignore-eos --json "$OUT/curve8/rapid-speed-smollm2-$t-eos.json"
  done
  $R bench plot "$OUT"/curve8/rapid-speed-smollm2-{2000,4000,8000}-eos.json --out docs/img/rapid-speed-smollm2-grid8.png
}

rapid-smol-next6() {  # the 8K set's prompts 7-12 (a fresh sample): does eta 20 hold 2.5x hf-greedy beyond curve8's six?
  $R bench speed --data "longdoc:$OUT/longdoc-smollm2-8000" --model $SMOL --drafter $SMOL \
    --methods hf-greedy,greedy,rapid:eta=0,rapid:eta=10,rapid:eta=20 --limit 6 --skip 6 --max-new-tokens 64 \
    --ignore-eos --json "$OUT/curve8/rapid-speed-smollm2-8000-eos-next6.json"
}

rapid-smol-conf() {  # eta 20 with the drafter stopping its chain at confidence 0.3 / 0.5 (the paper's README uses 0.4),
  # the 8K set's first 12 prompts: fewer drafted tokens the nudge rejects
  $R bench speed --data "longdoc:$OUT/longdoc-smollm2-8000" --model $SMOL --drafter $SMOL \
    --methods hf-greedy,greedy,rapid:eta=20,rapid:eta=20,confidence=0.3,rapid:eta=20,confidence=0.5 --limit 12 \
    --max-new-tokens 64 --ignore-eos --json "$OUT/curve8/rapid-conf12-smollm2-8000-eos.json"
}

rapid-smol-conf-eval() {  # answer quality of rapid-smol-conf's faster eta-20 settings, all 200 questions (about an hour)
  $R eval "$OUT/longdoc-smollm2-7500" --method lc,rapid --eta 20 --confidence 0.3,0.5 --model $SMOL --drafter $SMOL \
    --max-new-tokens 24 --json "$OUT/curve8/rapid-eval-smollm2-200-conf.json" --resume
}

rapid-smol-conf-curve() {  # SmolLM2's eta 20 with chains stopped at confidence 0.3 (+4.9 F1) by context length, beside
  # the default eta 10 and transformers' baselines in each run (then its plot)
  local t
  for t in 8000 4000 2000; do
    $R bench speed --data "longdoc:$OUT/longdoc-smollm2-$t" --model $SMOL --drafter $SMOL \
      --methods hf-greedy,hf-assisted,greedy,rapid:eta=10,rapid:eta=20,confidence=0.3 --limit 6 --max-new-tokens 64 \
      --ignore-eos --json "$OUT/curve8/rapid-conf-smollm2-$t-eos.json"
  done
  $R bench plot "$OUT"/curve8/rapid-conf-smollm2-{2000,4000,8000}-eos.json --out docs/img/rapid-speed-smollm2-eta20.png
}

rapid-qwen-assisted() {  # Qwen 0.5B's RAPID at 9K beside transformers' assisted generation in the same run
  $R data longdoc --out "$OUT/longdoc-qwen-16000" --tokens 16000 --limit 200 --model $QD
  $R bench speed --data "longdoc:$OUT/longdoc-qwen-16000" --model $QD --drafter $QD \
    --methods hf-greedy,hf-assisted,greedy,rapid:eta=0,rapid:eta=10 --limit 3 --max-new-tokens 64 --ignore-eos \
    --json "$OUT/curve8/rapid-assisted-qwen05-16000-eos.json"
}

rasd-ablation8() {  # issue 4's ablation on the four copy-heavy sets with the 8-bit grids: pruning none / fixed / auto,
  # retrieval overlapped / serial (the Qwen pair); SmolLM2's retrieval-only RASD with and without pruning
  local methods=greedy,pld,rest,draft,rasd:prune=none,rasd:prune=topk,k=4,rasd:prune=threshold,threshold=0.05,rasd,rasd:overlap=0
  local s eos
  for s in summarization rag squad-longdoc humaneval; do
    eos=""; [ "$s" = squad-longdoc ] && eos=--ignore-eos
    log "qwen rasd ablation $s"
    $R bench speed --data "$s" --model $QT --drafter $QD --methods "$methods" --limit 5 --max-new-tokens 64 $eos \
      --json "$OUT/ablation8/rasd-ablation-qwen-$s.json"
  done
  for s in summarization rag squad-longdoc humaneval; do
    eos=""; [ "$s" = squad-longdoc ] && eos=--ignore-eos
    log "smollm2 retrieval-only rasd ablation $s"
    $R bench speed --data "$s" --model $SMOL --methods greedy,pld,rest,rasd:prune=none,rasd --limit 10 \
      --max-new-tokens 64 $eos --json "$OUT/ablation8/rasd-ablation-smollm2-$s.json"
  done
}

verify5() {  # the verification-cost curve, ragspec's fast backend against the stock path in one run (current code)
  mkdir -p "$OUT/verify5"
  $R bench verify --model $SMOL --backends fast,stock --contexts 1024,4096,8000 --tokens 1,4,8,16,32 --reps 5 \
    --json "$OUT/verify5/verify-smollm2.json"
  $R bench verify --model $QT --backends fast,stock --contexts 1024,4096,8000 --tokens 1,4,8,16,32 --reps 3 \
    --json "$OUT/verify5/verify-qwen15.json"
}

smol_copy_speed() {  # SmolLM2 on the three copy-heavy sets, 10 prompts each: DIR
  $R bench speed --data squad-longdoc --model $SMOL --methods hf-greedy,greedy,pld,rasd --limit 10 --max-new-tokens 64 \
    --json "$OUT/$1/speed-smollm2-squad-longdoc.json"
  for s in rag summarization; do
    $R bench speed --data $s --model $SMOL --methods hf-greedy,greedy,pld,rasd --limit 10 --max-new-tokens 128 \
      --json "$OUT/$1/speed-smollm2-$s.json"
  done
}

rapid_smol_curve() {  # RAPID, SmolLM2 drafting for itself, EOS ignored, at the given lengths: DIR T... (then the plot)
  local dir=$1
  shift
  for t in "$@"; do
    $R bench speed --data "longdoc:$OUT/longdoc-smollm2-$t" --model $SMOL --drafter $SMOL \
      --methods hf-greedy,hf-assisted,greedy,pld,rapid:eta=0,rapid:eta=10 --limit 6 --max-new-tokens 64 --ignore-eos \
      --json "$OUT/$dir/rapid-speed-smollm2-$t-eos.json"
  done
  $R bench plot "$OUT/$dir"/rapid-speed-smollm2-{2000,4000,8000}-eos.json --out "docs/img/rapid-speed-smollm2-$dir.png"
}

quick() {  # the reduced runs behind the current docs/benchmarks.md (about 2 hours on 2 cores)
  $R bench verify --model $SMOL --contexts 1024,4096,8000 --tokens 1,4,8,16,32 --json "$OUT/verify-smollm2.json"
  $R bench speed --data rag --model $QT --drafter $QD \
    --methods hf-greedy,hf-pld,hf-assisted,greedy,pld,rest,draft,pld+draft,rasd --limit 3 --max-new-tokens 64 \
    --json "$OUT/speed-qwen-rag.json"
  for s in squad-longdoc rag summarization; do
    $R bench speed --data $s --model $SMOL --drafter $SMOL \
      --methods hf-greedy,hf-pld,hf-assisted,greedy,pld,rest,recycle,pld+recycle,rasd --limit 10 --max-new-tokens 128 \
      --json "$OUT/speed-smollm2-$s.json" --plot "$OUT/speed-smollm2-$s.png"
  done
  $R bench speed --data rag --model $SMOL --methods greedy,pld,rest,recycle,pld+recycle,rasd --limit 50 \
    --max-new-tokens 64 --json "$OUT/identity-smollm2-rag.json"
  $R data longdoc --out "$OUT/longdoc-smollm2-7500" --tokens 7500 --limit 200 --model $SMOL
  $R bench speed --data "longdoc:$OUT/longdoc-smollm2-7500" --model $SMOL --drafter $SMOL \
    --methods hf-greedy,hf-assisted,greedy,pld,rapid:eta=0,rapid:eta=10 --limit 4 --max-new-tokens 64 \
    --json "$OUT/rapid-speed-smollm2-7500.json"
  $R eval "$OUT/longdoc-smollm2-7500" --method lc,rag,rapid --eta 0,5,10,20,40 --model $SMOL --drafter $SMOL \
    --limit 6 --max-new-tokens 24 --json "$OUT/rapid-eval-smollm2-quick.json"
}

attention() {  # the attention kernel (models/attention.py) for decode and verification: the runs of 2026-12-02, night
  mkdir -p "$OUT/attn"
  for a in 1 0; do
    RAGSPEC_ATTENTION=$a $R bench verify --model $SMOL --backends fast --contexts 1024,4096,8000 --tokens 1,4,8,16,32 \
      --reps 5 --json "$OUT/attn/verify-smollm2-att$a.json"
    RAGSPEC_ATTENTION=$a $R bench verify --model $QT --backends fast --contexts 1024,4096 --tokens 1,4,8,16,32 --reps 3 \
      --json "$OUT/attn/verify-qwen15-att$a.json"
  done
  smol_copy_speed attn
  $R bench speed --data rag --model $SMOL --methods hf-greedy,greedy,pld,rest,pld+rest,rasd --limit 50 \
    --max-new-tokens 64 --json "$OUT/attn/identity-smollm2-rag.json"
  rapid_smol_curve attn 8000 4000 2000  # the long-document sets: grid() makes them
  $R bench speed --data squad-longdoc --model $QT --drafter $QD --methods hf-greedy,greedy,pld,draft,rasd --limit 6 \
    --max-new-tokens 64 --ignore-eos --json "$OUT/attn/speed-qwen-squad-longdoc-eos.json"
  $R bench speed --data rag --model $QT --drafter $QD --methods hf-greedy,greedy,draft,rasd --limit 50 \
    --max-new-tokens 32 --json "$OUT/attn/identity-qwen-rag.json"
  # answer quality with the float32 drafter (--drafter-quant auto), all 200 questions (ran beside the identity run)
  $R eval "$OUT/longdoc-smollm2-7500" --method lc,rag,rapid --eta 20,40 --model $SMOL --drafter $SMOL \
    --max-new-tokens 24 --limit 200 --json "$OUT/attn/rapid-eval-smollm2-200-f32drafter.json"
}

grid8() {  # 8-bit grids (Q5_0, Q6_K, Q8_0 tensors and the output layers): the runs of 2026-12-03
  mkdir -p "$OUT/grid8"
  $R data longdoc --out "$OUT/longdoc-qwen-16000" --tokens 16000 --limit 200 --model $QD
  $R bench speed --data "longdoc:$OUT/longdoc-qwen-16000" --model $QD --drafter $QD \
    --methods hf-greedy,greedy,rapid:eta=0,rapid:eta=10,rapid:eta=20 --limit 4 --max-new-tokens 64 --ignore-eos \
    --json "$OUT/grid8/rapid-speed-qwen05-16000-eos.json"
  $R bench verify --model $SMOL --backends fast --contexts 1024,4096,8000 --tokens 1,4,8,16,32 --reps 5 \
    --json "$OUT/grid8/verify-smollm2.json"
  $R bench verify --model $QT --backends fast --contexts 1024,4096 --tokens 1,4,8,16,32 --reps 3 \
    --json "$OUT/grid8/verify-qwen15.json"
  smol_copy_speed grid8
  $R bench speed --data squad-longdoc --model $QT --drafter $QD --methods hf-greedy,greedy,pld,draft,rasd --limit 6 \
    --max-new-tokens 64 --ignore-eos --json "$OUT/grid8/speed-qwen-squad-longdoc-eos.json"
  for s in rag summarization; do
    $R bench speed --data $s --model $QT --drafter $QD --methods hf-greedy,greedy,pld,draft,rasd --limit 10 \
      --max-new-tokens 64 --json "$OUT/grid8/speed-qwen-$s.json"
  done
  $R data longdoc --out "$OUT/longdoc-smollm2-8000" --tokens 8060 --limit 20 --model $SMOL --max-articles 4 --fill
  $R bench speed --data "longdoc:$OUT/longdoc-smollm2-8000" --model $SMOL --drafter $SMOL \
    --methods hf-greedy,hf-assisted,greedy,pld,rapid:eta=0,rapid:eta=10 --limit 6 --max-new-tokens 64 --ignore-eos \
    --json "$OUT/grid8/rapid-speed-smollm2-8000-eos.json"
  $R bench speed --data rag --model $SMOL --methods hf-greedy,greedy,pld,rest,pld+rest,rasd --limit 50 \
    --max-new-tokens 64 --json "$OUT/grid8/identity-smollm2-rag.json"
  $R bench speed --data rag --model $QT --drafter $QD --methods hf-greedy,greedy,draft,rasd --limit 50 \
    --max-new-tokens 32 --json "$OUT/grid8/identity-qwen-rag.json"
}

rasd5() {  # issue 4's five sets with the 8-bit grids, every single source and transformers' baselines in each run
  mkdir -p "$OUT/rasd5"
  local s
  for s in humaneval summarization rag squad-longdoc mt_bench; do
    $R bench speed --data $s --model $SMOL --methods hf-greedy,hf-pld,greedy,pld,rest,rasd --limit 10 \
      --max-new-tokens 64 --json "$OUT/rasd5/speed-smollm2-$s.json"
  done
  for s in humaneval summarization rag squad-longdoc mt_bench; do
    $R bench speed --data $s --model $QT --drafter $QD --methods hf-greedy,hf-pld,greedy,pld,rest,draft,rasd \
      --limit 5 --max-new-tokens 64 --json "$OUT/rasd5/speed-qwen-$s.json"
  done
}

f32-drafter-eval() {  # SmolLM2 answer quality with the default drafter (float32 through the grid), all 200 questions
  $R data longdoc --out "$OUT/longdoc-smollm2-7500" --tokens 7500 --limit 200 --model $SMOL
  $R eval "$OUT/longdoc-smollm2-7500" --method lc,rag,rapid --eta 0,5,10,20,40 --model $SMOL --drafter $SMOL \
    --max-new-tokens 24 --json "$OUT/f32d/rapid-eval-smollm2-200.json" --resume
}

for section in "$@"; do
  log "=== $section"
  "$section"
done
log "done"
