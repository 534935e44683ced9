#!/usr/bin/env bash
# The language-model commands as a user runs them on a small text file: `mx train` with a
# JSON summary, a stopped run resumed to the same losses, `mx eval` (direct cast, JSON keys),
# `mx generate`, `mx plot`, `mx study table` and `mx study errors`, the small-paper `mx demo`, and bad input (a GPU asked for where
# there is none included): exit status 2 with one line on stderr.
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"

for i in $(seq 1 400); do
  echo "the scale is shared by a block of thirty-two narrow elements, line $((i % 17))."
done >corpus.txt

common=(--model tiny --data corpus.txt --steps 12 --batch 4 --seq-len 32 --eval-every 4
        --checkpoint-every 5 -q)
json=$("$mx" train "${common[@]}" --recipe mxfp6 --out straight --json)
for key in train_loss val_loss tokens_per_s; do
  grep -q "\"$key\":[0-9]" <<< "$json" || fail "train --json lacks $key: $json"
done
[ -f straight/model.safetensors ] && [ -f straight/checkpoint.safetensors ] \
  && [ "$(wc -l <straight/log.csv)" -eq 13 ] || fail "run folder incomplete"

"$mx" train "${common[@]}" --recipe mxfp6 --out resumed --stop-at 7
[ ! -f resumed/model.safetensors ] || fail "a stopped run wrote its final model"
"$mx" train --out resumed --resume -q
diff <(cut -d, -f1-5 straight/log.csv) <(cut -d, -f1-5 resumed/log.csv) \
  || fail "resumed run logged different losses"
cmp straight/model.safetensors resumed/model.safetensors || fail "resumed model differs"

# Forward casts only: the first step's forward is the recipe's; its gradients are not.
json=$("$mx" train "${common[@]}" --recipe mxfp6 --forward-casts-only --out forward --json)
grep -q '"recipe":"mxfp6-forward"' <<< "$json" || fail "forward-only recipe not named: $json"
[ "$(sed -n 2p straight/log.csv | cut -d, -f3)" = "$(sed -n 2p forward/log.csv | cut -d, -f3)" ] \
  || fail "--forward-casts-only changed the first forward pass"
[ "$(sed -n 2p straight/log.csv | cut -d, -f4)" != "$(sed -n 2p forward/log.csv | cut -d, -f4)" ] \
  || fail "--forward-casts-only left the gradients' casts in"

eval_json=$("$mx" eval straight --recipe mxint8 --batches 2 --json)
for key in loss ppl kl top1; do
  grep -q "\"$key\":" <<< "$eval_json" || fail "eval --json lacks $key: $eval_json"
done
"$mx" eval straight/model.safetensors --recipe mxint8,mxfp4 --data corpus.txt --batches 2 \
  | matches "^  mxfp4 " || fail "eval table lacks mxfp4"

text=$("$mx" generate straight --prompt "the scale" --tokens 20 --seed 3)
# The prompt (9 bytes) and at least 11 of the 20 bytes drawn (trailing newlines are dropped).
[ "${#text}" -ge 20 ] && [ "${text:0:9}" = "the scale" ] || fail "generate printed too little: $text"
[ "$("$mx" generate straight --prompt "the scale" --tokens 20 --seed 3)" = "$text" ] \
  || fail "generate is not reproducible under a seed"

# Finetuning starts from the trained weights: its first loss is far below a fresh run's.
"$mx" train --init straight --data corpus.txt --steps 2 --batch 4 --seq-len 32 -q --out tuned
fresh=$(sed -n 2p straight/log.csv | cut -d, -f3)
tuned=$(sed -n 2p tuned/log.csv | cut -d, -f3)
awk -v a="$tuned" -v b="$fresh" 'BEGIN { exit !(a < b - 1) }' \
  || fail "--init did not start from the weights: first loss $tuned, a fresh run's $fresh"

"$mx" train "${common[@]}" --recipe fp32 --out stopped --stop-at 3
[ -z "$("$mx" export stopped -o stopped.safetensors -q)" ] || fail "export -q printed something"
summary=$("$mx" train "${common[@]:0:${#common[@]}-1}" --recipe fp32 --out early --stop-at 2 2>/dev/null)
matches "stopped steps 2/12: train loss [0-9.]*, no validation pass yet" <<< "$summary" \
  || fail "a run stopped before its first validation printed '$summary'"
"$mx" eval stopped.safetensors --data corpus.txt --batches 1 --json | matches '"kl":' \
  || fail "an exported model does not evaluate"

"$mx" plot straight resumed -o curves.png >/dev/null
[ "$(head -c 4 curves.png | tail -c 3)" = "PNG" ] || fail "plot wrote no PNG"
"$mx" plot straight resumed --validation-only --from-step 4 -o validation.png >/dev/null
[ "$(head -c 4 validation.png | tail -c 3)" = "PNG" ] || fail "plot --validation-only wrote no PNG"
# A run archived as its log and run.json alone (no checkpoint, no shards) gives the same row.
mkdir -p archived/straight && cp straight/log.csv straight/run.json archived/straight/
cmp -s <("$mx" study table archived/straight --no-plot | grep '^| straight |') \
  <("$mx" study table straight --no-plot | grep '^| straight |') ||
  fail "study table: the archived run gives another row"
"$mx" study table straight resumed -o table --no-plot >table.txt
grep -q '^| resumed | tiny |' table.txt || fail "study table: $(cat table.txt)"
cmp -s <(head -n "$(wc -l <table/table.md)" table.txt) table/table.md ||
  fail "study table printed another table than it wrote"
grep -q '^| tiny | mxfp6 | 2 |' table.txt || fail "study table: no summary of the two mxfp6 runs"
# A further baseline: one more gap column; both runs are mxfp6, so each is +0.0000 to the other.
"$mx" study table straight resumed --also-baseline mxfp6 --no-plot | matches '| gap to mxfp6 |' ||
  fail "study table --also-baseline: no column"

# The casts' errors on the trained run: a row per product, six roles, the 6-bit error a few
# percent; in JSON, one record per layer, product and role.
"$mx" study errors straight --recipe mxfp6 --batches 1 --seq-len 32 >errors.txt
grep -Eq '^\| fc \| [1-9]\.[0-9]+%' errors.txt || fail "study errors: $(cat errors.txt)"
grep -q '^| classifier |' errors.txt || fail "study errors: no classifier row"
"$mx" study errors straight --recipe mxfp6 --batches 1 --seq-len 32 --json \
  | matches '"product":"proj","relative_rmse":' || fail "study errors --json lacks the rows"
expect_one_line_error "--split must be val or all" study errors straight --split test
expect_one_line_error "unknown recipe" study errors straight --recipe fp7
expect_one_line_error "--seq-len 999 is longer than the model's context of 64" study errors straight \
  --seq-len 999
expect_one_line_error "--seq-len 999 is longer than the model's context of 64" eval straight \
  --seq-len 999

"$mx" demo --data corpus.txt --steps 4 --batch 2 --out demo >demo.txt 2>/dev/null
grep -q "^  mxfp4w-mxfp6a " demo.txt && grep -q "^  mxint8 " demo.txt \
  && [ -f demo/loss.png ] && [ -f demo/results.json ] || fail "demo tables or outputs missing"

expect_one_line_error "already holds a run" train "${common[@]}" --out straight
expect_one_line_error "no checkpoint" train --out nowhere --resume
# A resumed run's settings are its checkpoint's: one given again is refused, not ignored.
expect_one_line_error "--lr: a resumed run keeps the settings of its checkpoint" \
  train --out resumed --resume --lr 5
expect_one_line_error "--recipe: a resumed run keeps the settings of its checkpoint" \
  train --out resumed --resume --recipe mxfp4
expect_one_line_error "unknown recipe" train "${common[@]}" --recipe mxfp5 --out r2
expect_one_line_error "unknown --model" train --model huge --data corpus.txt --out r3
expect_one_line_error "seq-len" train "${common[@]}" --seq-len 999 --out r4
expect_one_line_error "micro-batch must divide" train "${common[@]}" --micro-batch 3 --out r7
expect_one_line_error "--init: cannot open nowhere" train --init nowhere --data corpus.txt --out r8
expect_one_line_error "excludes" train --init straight --model tiny --data corpus.txt --out r9
printf 'not a model' >bad.safetensors
expect_one_line_error "bad.safetensors" eval bad.safetensors --data corpus.txt
head -c 5000 straight/checkpoint.safetensors >straight/cut.safetensors
expect_one_line_error "cut.safetensors" eval straight/cut.safetensors
expect_one_line_error "unknown recipe" eval straight --recipe fp7
expect_one_line_error "unknown device 'tpu'" train "${common[@]}" --device tpu --out r5
expect_one_line_error "tf32 recipe multiplies on TF32 tensor cores: use --device cuda" \
  train "${common[@]}" --recipe tf32 --out r7
expect_one_line_error "--packed-products is for --device cuda" train "${common[@]}" \
  --packed-products --out r12
[ ! -e r12 ] || fail "train --packed-products on the CPU left a run folder"
printf 'mxkit product algorithms 1\ndevice X\ncublaslt 1\ncandidates 16\n' >algos.txt
expect_one_line_error "--product-algorithms is for --device cuda" train "${common[@]}" \
  --product-algorithms algos.txt --out r13
[ ! -e r13 ] || fail "train --product-algorithms on the CPU left a run folder"
expect_one_line_error "--product-algorithms: File does not exist: none.txt" train "${common[@]}" \
  --product-algorithms none.txt --out r14
expect_one_line_error "--gpus 2 needs --device cuda" train "${common[@]}" --gpus 2 --out r10
expect_one_line_error "--gpus: expected an integer from 1 to 1024, got '0'" train "${common[@]}" --gpus 0 --out r11
expect_one_line_error "--rank is for the processes --gpus starts" train "${common[@]}" --rank 0 \
  --out r12
if [ ! -e /dev/nvidia0 ]; then  # without a GPU, --device cuda is one clear line, and no run
  expect_one_line_error "--device cuda: " train "${common[@]}" --device cuda --gpus 2 --out r13
  expect_one_line_error "--device cuda: " train "${common[@]}" --device cuda --out r6
  [ ! -e r6 ] || fail "a refused --device cuda left a run folder"
  expect_one_line_error "--device cuda: " eval straight --device cuda --batches 1
  expect_one_line_error "--device cuda: " generate straight --device cuda --tokens 4
fi
expect_one_line_error "log.csv" plot nowhere
# A run whose losses are all NaN has nothing to draw: one line, and no PNG.
mkdir -p diverged && cp straight/run.json diverged/
awk -F, 'BEGIN { OFS = "," } NR == 1 { print; next } { $3 = "nan"; if ($5 != "") $5 = "nan"; print }' \
  straight/log.csv >diverged/log.csv
expect_one_line_error "nothing to plot: no series has a finite value" plot diverged -o diverged.png
[ ! -e diverged.png ] || fail "a plot with nothing to draw left a file"
expect_one_line_error "nothing to plot" study table diverged -o diverged_table
expect_one_line_error "--baseline bogus: no run used that recipe (the runs used mxfp6)" \
  study table straight --baseline bogus --no-plot
expect_one_line_error "--also-baseline fp32: no run used that recipe" \
  study table straight --also-baseline fp32 --no-plot
[ ! -e diverged_table ] || fail "a failed study table left its output folder"
expect_one_line_error "--from-step: expected an integer of at least 0, got '-1'" plot straight \
  --from-step -1
expect_one_line_error "--from-step: expected an integer of at least 0, got 'abc'" plot straight \
  --from-step abc
expect_one_line_error "no step at or after 1000" plot straight --from-step 1000
expect_one_line_error "run nowhere: holds neither run.json nor checkpoint.safetensors" study table nowhere
expect_one_line_error "nowhere" export nowhere -o x.safetensors
echo "train: ok"
