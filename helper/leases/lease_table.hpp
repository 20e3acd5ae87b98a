// Which sandboxes hold which GPUs right now. A policy rule with
// `exclusive = true` makes a GPU usable by one sandbox at a time; without it,
// any number share it, but never alongside an exclusive holder.
//
// Leases are RAII: a sandbox keeps its Lease for as long as it lives and the
// GPUs are released when the Lease is destroyed, so no error path (sandbox
// setup failing, client disconnecting) can leak a GPU.
//
// Keyed by NVIDIA device minor (the N of /dev/nvidiaN): that is what names a
// physical GPU to the kernel, independent of the order GPUs are listed in.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace gpubox::leases {

class LeaseTable;

class Lease {
 public:
  Lease() = default;  // holds nothing
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  Lease(Lease&& other) noexcept;
  Lease& operator=(Lease&& other) noexcept;
  ~Lease() { release(); }

  // Gives the GPUs back now (idempotent).
  void release() noexcept;

  bool held() const { return state_ != nullptr; }
  const std::vector<unsigned>& minors() const { return minors_; }  // sorted, no duplicates
  bool exclusive() const { return exclusive_; }

 private:
  friend class LeaseTable;
  struct State;
  // Shared with the table so a Lease that outlives its table stays safe
  // (it then releases into a table nobody reads any more).
  std::shared_ptr<State> state_;
  std::vector<unsigned> minors_;
  bool exclusive_ = false;
};

class LeaseTable {
 public:
  LeaseTable();
  LeaseTable(const LeaseTable&) = delete;
  LeaseTable& operator=(const LeaseTable&) = delete;

  // Takes the GPUs with these minors for one sandbox, all or nothing.
  // Throws gpubox::Error("GPU minor N is held by another sandbox (exclusive
  // lease)") when an exclusive lease is asked for a GPU that anyone holds, or
  // any lease for a GPU that someone holds exclusively. An empty list gives
  // an empty (but valid) lease.
  Lease acquire(const std::vector<unsigned>& minors, bool exclusive);

  // How many sandboxes hold this GPU now (for `gpubox gpus` and for
  // `count:N`, which prefers idle GPUs).
  unsigned holders(unsigned minor) const;
  // Whether its holder holds it exclusively.
  bool heldExclusively(unsigned minor) const;

 private:
  std::shared_ptr<Lease::State> state_;
};

}  // namespace gpubox::leases
