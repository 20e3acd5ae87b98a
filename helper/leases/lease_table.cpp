#include "lease_table.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "error.hpp"

namespace gpubox::leases {

// The helper's loop is single-threaded today, but a Lease may be destroyed
// from wherever its sandbox object dies; a mutex keeps that honest for free.
struct Lease::State {
  struct Slot {
    unsigned shared = 0;     // number of non-exclusive holders
    bool exclusive = false;  // one exclusive holder (then shared == 0)
  };
  mutable std::mutex mutex;
  std::map<unsigned, Slot> slots;  // only GPUs that someone holds
};

Lease::Lease(Lease&& other) noexcept
    : state_(std::move(other.state_)),
      minors_(std::move(other.minors_)),
      exclusive_(other.exclusive_) {
  other.state_.reset();
  other.minors_.clear();
}

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
    minors_ = std::move(other.minors_);
    exclusive_ = other.exclusive_;
    other.state_.reset();
    other.minors_.clear();
  }
  return *this;
}

void Lease::release() noexcept {
  if (!state_) return;
  {
    const std::lock_guard lock(state_->mutex);
    for (unsigned minor : minors_) {
      auto it = state_->slots.find(minor);
      if (it == state_->slots.end()) continue;  // cannot happen; never underflow
      if (exclusive_) {
        it->second.exclusive = false;
      } else if (it->second.shared > 0) {
        --it->second.shared;
      }
      if (!it->second.exclusive && it->second.shared == 0) state_->slots.erase(it);
    }
  }
  state_.reset();
  minors_.clear();
}

LeaseTable::LeaseTable() : state_(std::make_shared<Lease::State>()) {}

Lease LeaseTable::acquire(const std::vector<unsigned>& minors, bool exclusive) {
  Lease lease;
  lease.minors_ = minors;
  // A sandbox asking for the same GPU twice holds it once (and must not
  // conflict with itself under an exclusive lease).
  std::sort(lease.minors_.begin(), lease.minors_.end());
  lease.minors_.erase(std::unique(lease.minors_.begin(), lease.minors_.end()), lease.minors_.end());
  lease.exclusive_ = exclusive;

  const std::lock_guard lock(state_->mutex);
  // Check everything first, then take everything: all or nothing.
  for (unsigned minor : lease.minors_) {
    auto it = state_->slots.find(minor);
    if (it == state_->slots.end()) continue;
    const bool busy =
        exclusive ? (it->second.exclusive || it->second.shared > 0) : it->second.exclusive;
    if (busy)
      throw Error("GPU minor " + std::to_string(minor) +
                  " is held by another sandbox (exclusive lease)");
  }
  for (unsigned minor : lease.minors_) {
    auto& slot = state_->slots[minor];
    if (exclusive)
      slot.exclusive = true;
    else
      ++slot.shared;
  }
  lease.state_ = state_;
  return lease;
}

unsigned LeaseTable::holders(unsigned minor) const {
  const std::lock_guard lock(state_->mutex);
  auto it = state_->slots.find(minor);
  if (it == state_->slots.end()) return 0;
  return it->second.shared + (it->second.exclusive ? 1 : 0);
}

bool LeaseTable::heldExclusively(unsigned minor) const {
  const std::lock_guard lock(state_->mutex);
  auto it = state_->slots.find(minor);
  return it != state_->slots.end() && it->second.exclusive;
}

}  // namespace gpubox::leases
