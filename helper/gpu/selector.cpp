// select(): --gpu selectors -> the GPUs a sandbox gets. Fail-closed: every
// GPU that ends up in the selection has passed the policy grant, and every
// refusal names what was asked and why.
#include <algorithm>
#include <set>

#include "cdi.hpp"
#include "device_nodes.hpp"
#include "error.hpp"
#include "gpu.hpp"
#include "proc_info.hpp"
#include "text_file.hpp"

namespace gpubox::gpu {

namespace {

constexpr const char* kForms =
    "expected none, all, indices like 0,2, GPU-<uuid>, count:N or nvidia.com/gpu=NAME";

std::string uidStr(uid_t uid) {
  return "uid " + std::to_string(uid);
}

// "0-3" for consecutive indices, else "0,2,5".
std::string indexList(const std::vector<unsigned>& idx) {
  if (idx.empty()) return "";
  bool consecutive = true;
  for (size_t i = 1; i < idx.size(); ++i)
    if (idx[i] != idx[i - 1] + 1) consecutive = false;
  if (consecutive && idx.size() > 2)
    return std::to_string(idx.front()) + "-" + std::to_string(idx.back());
  std::string out;
  for (unsigned i : idx) out += (out.empty() ? "" : ",") + std::to_string(i);
  return out;
}

std::string hostHas(const Inventory& inv) {
  if (inv.gpus.empty()) return "this host has none";
  std::vector<unsigned> all;
  for (const Gpu& g : inv.gpus) all.push_back(g.index);
  return "this host has " + std::to_string(inv.gpus.size()) + ": " + indexList(all);
}

class Selector {
 public:
  Selector(const Inventory& inv, const GpuGrant& grant, uid_t uid)
      : inv_(inv), grant_(grant), uid_(uid) {}

  bool permitted(const Gpu& g) const {
    if (!grant_.allowed) return false;
    if (grant_.all) return true;
    if (std::find(grant_.indices.begin(), grant_.indices.end(), g.index) != grant_.indices.end())
      return true;
    if (g.uuid.empty()) return false;
    std::string u = lowercase(g.uuid);
    return std::any_of(grant_.uuids.begin(), grant_.uuids.end(),
                       [&](const std::string& x) { return lowercase(x) == u; });
  }

  std::vector<unsigned> permittedIndices() const {
    std::vector<unsigned> out;
    for (const Gpu& g : inv_.gpus)
      if (permitted(g)) out.push_back(g.index);
    return out;
  }

  std::string mayUse() const {
    auto idx = permittedIndices();
    if (idx.empty()) return uidStr(uid_) + " may use no GPU of this host";
    return uidStr(uid_) + " may use GPU" + (idx.size() > 1 ? "s " : " ") + indexList(idx);
  }

  // Adds a GPU after the policy check; duplicates keep their first place.
  void add(const std::string& asked, unsigned index) {
    const Gpu& g = inv_.gpus.at(index);
    if (!permitted(g)) throw Error("--gpu " + asked + ": refused by policy: " + mayUse());
    if (std::find(chosen_.begin(), chosen_.end(), index) == chosen_.end()) chosen_.push_back(index);
  }

  unsigned byIndex(const std::string& asked, std::string_view item) const {
    auto idx = parseUnsigned(item, 1u << 20);
    if (!idx)
      throw Error("--gpu " + asked + ": '" + std::string(item) + "' is not a GPU (" + kForms + ")");
    if (*idx >= inv_.gpus.size())
      throw Error("--gpu " + asked + ": no such GPU (" + hostHas(inv_) + ")");
    return *idx;
  }

  unsigned byUuid(const std::string& asked, std::string_view prefix) const {
    std::string p = lowercase(prefix);
    std::vector<unsigned> hits;
    for (const Gpu& g : inv_.gpus)
      if (!g.uuid.empty() && lowercase(g.uuid).rfind(p, 0) == 0) hits.push_back(g.index);
    if (hits.empty())
      throw Error("--gpu " + asked + ": no GPU has a UUID starting with " + std::string(prefix));
    if (hits.size() > 1)
      throw Error("--gpu " + asked + ": UUID prefix is ambiguous, it matches GPUs " +
                  indexList(hits));
    return hits.front();
  }

  // One list item: an index or a UUID (prefix).
  unsigned item(const std::string& asked, std::string_view it) const {
    if (it.size() >= 4 && lowercase(it.substr(0, 4)) == "gpu-") return byUuid(asked, it);
    return byIndex(asked, it);
  }

  void all(const std::string& asked) {
    if (inv_.gpus.empty()) throw Error("--gpu " + asked + ": no GPU (" + hostHas(inv_) + ")");
    // "all" means every GPU this caller may use; a caller granted none is
    // refused rather than given an empty set.
    auto idx = permittedIndices();
    if (idx.empty()) throw Error("--gpu " + asked + ": refused by policy: " + mayUse());
    for (unsigned i : idx) add(asked, i);
  }

  void cdi(const std::string& asked) {
    auto dev = std::find_if(inv_.cdi.begin(), inv_.cdi.end(),
                            [&](const CdiDevice& d) { return d.name == asked; });
    std::string_view name = std::string_view(asked).substr(std::string(kCdiKind).size() + 1);
    if (dev == inv_.cdi.end()) {
      // No spec defines it: the same names nvidia-ctk would generate.
      if (name == "all") return all(asked);
      if (!name.empty() && ((name[0] >= '0' && name[0] <= '9') ||
                            (name.size() >= 4 && lowercase(name.substr(0, 4)) == "gpu-")))
        return add(asked, item(asked, name));
      std::string known;
      for (size_t i = 0; i < inv_.cdi.size() && i < 8; ++i)
        known += (known.empty() ? "" : ", ") + inv_.cdi[i].name;
      throw Error("--gpu " + asked + ": no CDI device of that name" +
                  (known.empty() ? std::string(" (no CDI spec defines any)")
                                 : " (CDI specs define: " + known + ")"));
    }
    // The policy is about GPUs, so a CDI device counts as the GPUs whose
    // /dev/nvidiaN nodes it binds; it cannot smuggle in one not granted.
    std::vector<unsigned> gpus;
    for (const DeviceNode& n : dev->nodes) {
      if (n.major != kNvidiaMajor || n.minor >= kModesetMinor) continue;
      for (const Gpu& g : inv_.gpus)
        if (g.minor == n.minor) gpus.push_back(g.index);
    }
    if (gpus.empty() && !grant_.all)
      throw Error("--gpu " + asked +
                  ": refused by policy: the CDI device binds no GPU of this host, which only a "
                  "grant of all GPUs allows; " +
                  mayUse());
    for (unsigned i : gpus) add(asked, i);
    if (std::find(cdiNames_.begin(), cdiNames_.end(), asked) == cdiNames_.end())
      cdiNames_.push_back(asked);
  }

  void count(const std::string& asked, const std::function<unsigned(unsigned)>& holders) {
    auto n = parseUnsigned(std::string_view(asked).substr(6), 1024);
    if (!n || *n == 0)
      throw Error("--gpu " + asked + ": count must be a whole number of at least 1");
    std::vector<unsigned> candidates;
    for (unsigned i : permittedIndices())
      if (std::find(chosen_.begin(), chosen_.end(), i) == chosen_.end()) candidates.push_back(i);
    if (candidates.size() < *n) {
      if (permittedIndices().empty())
        throw Error("--gpu " + asked + ": refused by policy: " + mayUse());
      throw Error("--gpu " + asked + ": only " + std::to_string(candidates.size()) +
                  " GPU(s) left to pick from (" + mayUse() + ")");
    }
    // Fewest current holders first, then lowest index: deterministic, and
    // spreads sandboxes over idle GPUs.
    std::vector<std::pair<unsigned, unsigned>> ranked;
    for (unsigned i : candidates) ranked.emplace_back(holders ? holders(inv_.gpus[i].minor) : 0, i);
    std::stable_sort(ranked.begin(), ranked.end());
    for (unsigned k = 0; k < *n; ++k) add(asked, ranked[k].second);
  }

  std::vector<unsigned> chosen_;
  std::vector<std::string> cdiNames_;

 private:
  const Inventory& inv_;
  const GpuGrant& grant_;
  uid_t uid_;
};

}  // namespace

Selection select(const Inventory& inv, const std::vector<std::string>& selectors,
                 const GpuGrant& grant, const std::function<unsigned(unsigned minor)>& holders,
                 uid_t uid) {
  if (selectors.size() > SpecLimits::kMaxGpuSelectors)
    throw Error("--gpu given " + std::to_string(selectors.size()) + " times; at most " +
                std::to_string(SpecLimits::kMaxGpuSelectors) + " allowed");
  bool none = false;
  std::vector<const std::string*> asked;
  for (const std::string& s : selectors) {
    if (s.empty()) throw Error("--gpu: empty value (" + std::string(kForms) + ")");
    if (s.size() > SpecLimits::kMaxSelector || s.find('\0') != std::string::npos)
      throw Error("--gpu: value longer than " + std::to_string(SpecLimits::kMaxSelector) +
                  " characters");
    if (s == "none")
      none = true;
    else
      asked.push_back(&s);
  }
  if (asked.empty()) return {};
  if (none) throw Error("--gpu none cannot be combined with --gpu " + *asked.front());

  // Fail closed before looking at the inventory: a caller with no grant
  // learns nothing about the host's GPUs.
  if (!grant.allowed)
    throw Error("--gpu " + *asked.front() +
                ": refused by policy: no [[allow]] rule grants GPUs to " + uidStr(uid));

  Selector sel(inv, grant, uid);
  // Explicit selectors first, in order; count:N last so it picks among the
  // GPUs not already named.
  for (const std::string* s : asked) {
    if (*s == "all") {
      sel.all(*s);
    } else if (s->rfind("count:", 0) == 0) {
      continue;
    } else if (s->rfind(std::string(kCdiKind) + "=", 0) == 0) {
      sel.cdi(*s);
    } else if (s->find('=') != std::string::npos) {
      throw Error("--gpu " + *s + ": only " + kCdiKind + " CDI devices can be requested");
    } else {
      std::string_view rest = *s;
      while (true) {
        size_t comma = rest.find(',');
        std::string_view it = rest.substr(0, comma);
        if (it.empty()) throw Error("--gpu " + *s + ": empty item in the list");
        sel.add(*s, sel.item(*s, it));
        if (comma == std::string_view::npos) break;
        rest = rest.substr(comma + 1);
      }
    }
  }
  for (const std::string* s : asked)
    if (s->rfind("count:", 0) == 0) sel.count(*s, holders);

  if (grant.maxGpus != 0 && sel.chosen_.size() > grant.maxGpus) {
    std::string all;
    for (const std::string* s : asked) all += (all.empty() ? "--gpu " : " --gpu ") + *s;
    throw Error(all + ": " + std::to_string(sel.chosen_.size()) +
                " GPUs asked, policy allows at most " + std::to_string(grant.maxGpus) +
                " per sandbox");
  }
  Selection out;
  out.gpuIndices = std::move(sel.chosen_);
  out.cdiNames = std::move(sel.cdiNames_);
  return out;
}

}  // namespace gpubox::gpu
