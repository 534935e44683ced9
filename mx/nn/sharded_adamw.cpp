#include "mx/nn/sharded_adamw.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

namespace mx::nn {

std::string ShardedAdamW::create(Model& model, Communicator& comm, const AdamWConfig& config,
                                 std::unique_ptr<ShardedAdamW>* out) {
  std::unique_ptr<ShardedAdamW> o(new ShardedAdamW(model.backend(), comm, config));
  const int64_t total = model.params().size();
  if (std::string e = make_param_shards(total, comm.size(), kAlign, &o->shards_); !e.empty()) {
    return e;
  }
  const ParamShards& s = o->shards_;
  o->begin_ = s.begin(comm.rank());
  o->len_ = s.end(comm.rank()) - o->begin_;
  Backend& be = model.backend();
  for (auto [buf, type, n] :
       {std::tuple{&o->sent_, BufType::kF32, s.padded()},
        std::tuple{&o->gathered_, BufType::kF32, s.padded()},
        std::tuple{&o->grad_, BufType::kF32, s.shard},
        std::tuple{&o->shard_, BufType::kF32, s.shard}, std::tuple{&o->m_, BufType::kF32, s.shard},
        std::tuple{&o->v_, BufType::kF32, s.shard},
        std::tuple{&o->decay_, BufType::kU8, s.shard}}) {
    *buf = be.alloc(type, n);
    if (buf->empty()) {
      std::string e = be.take_error();
      return e.empty() ? "no memory for the optimizer's shard" : e;
    }
  }
  std::vector<uint8_t> mask = decay_mask(model.params());
  mask.resize(size_t(s.padded()), 0);
  be.upload(o->decay_, mask.data() + o->begin_);
  *out = std::move(o);
  return "";
}

ShardedAdamW::~ShardedAdamW() {
  for (Buf b : {sent_, gathered_, grad_, shard_, m_, v_, decay_}) {
    if (!b.empty()) backend_.release(b);
  }
}

void ShardedAdamW::reduce_ready(Model& model, int64_t first, int64_t count) {
  const Buf grads = model.grad_buf();
  for (int r = 0; r < shards_.world; ++r) {
    const int64_t lo = std::max(first, shards_.begin(r));
    const int64_t hi = std::min(first + count, shards_.end(r));
    if (lo < hi) {
      comm_.reduce_sum(grads.at(lo, hi - lo), grad_.at(lo - shards_.begin(r), hi - lo), hi - lo, r);
    }
  }
  reduced_ += count;
}

std::string ShardedAdamW::step(Model& model, float lr, double max_norm, double* norm) {
  const int64_t total = shards_.total, shard = shards_.shard;
  const int64_t reduced = std::exchange(reduced_, 0);
  if (reduced == 0) {
    backend_.copy(sent_.at(0, total), model.grad_buf());
    comm_.reduce_scatter_sum(sent_, grad_, shard);
  } else if (reduced == total) {
    comm_.finish_reductions();
  } else {
    return "the backward reduced the gradients of " + std::to_string(reduced) + " of " +
           std::to_string(total) + " parameters";
  }
  double squares = len_ > 0 ? std::pow(backend_.norm(grad_.at(0, len_)), 2.0) : 0.0;
  comm_.all_reduce_sum(&squares, 1);
  *norm = std::sqrt(squares);
  ++t_;
  if (len_ > 0) {
    const Buf params = model.param_buf().at(begin_, len_);
    AdamWStep s = adamw_step(config_, t_, lr);
    s.grad_scale = clip_scale(*norm, max_norm);
    backend_.adamw(params, grad_.at(0, len_), m_.at(0, len_), v_.at(0, len_), decay_.at(0, len_),
                   s);
    backend_.copy(shard_.at(0, len_), params);
  }
  comm_.all_gather(shard_, gathered_, shard);
  backend_.copy(model.param_buf(), gathered_.at(0, total));
  if (std::string e = comm_.take_error(); !e.empty()) return e;
  return backend_.take_error();
}

std::string ShardedAdamW::gather_moments(std::vector<float>* m, std::vector<float>* v) {
  const int64_t total = shards_.total;
  for (auto [moment, out] : {std::pair{m_, m}, std::pair{v_, v}}) {
    comm_.all_gather(moment, gathered_, shards_.shard);
    if (std::string e = comm_.take_error(); !e.empty()) return e;
    out->resize(size_t(total));
    backend_.download(out->data(), gathered_.at(0, total));
  }
  return backend_.take_error();
}

std::string ShardedAdamW::load_moments(const std::vector<float>& m, const std::vector<float>& v,
                                       int64_t steps) {
  if (int64_t(m.size()) != shards_.total || int64_t(v.size()) != shards_.total) {
    return "the optimizer state holds " + std::to_string(m.size()) + " and " +
           std::to_string(v.size()) + " moments for " + std::to_string(shards_.total) +
           " parameters";
  }
  if (len_ > 0) {
    backend_.upload(m_.at(0, len_), m.data() + begin_);
    backend_.upload(v_.at(0, len_), v.data() + begin_);
  }
  t_ = steps;
  return backend_.take_error();
}

}  // namespace mx::nn
