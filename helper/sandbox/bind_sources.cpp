#include "bind_sources.hpp"

#include <unistd.h>

#include <algorithm>

#include "error.hpp"

namespace gpubox {

bool underPrefix(std::string_view path, std::string_view prefix) {
  if (prefix == "/") return !path.empty() && path[0] == '/';
  if (!path.starts_with(prefix)) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

void checkBindSource(const MountOp& op, int sourceFd, const BindSourceRule& rule) {
  const std::string link = "/proc/self/fd/" + std::to_string(sourceFd);
  std::string real(4096, '\0');
  const ssize_t n = ::readlink(link.c_str(), real.data(), real.size());
  if (n <= 0 || static_cast<size_t>(n) >= real.size())
    throwErrno(describeMount(op) + ": cannot tell where the source " + op.source + " lies");
  real.resize(static_cast<size_t>(n));
  const bool writable = op.kind != MountKind::RoBind;
  std::vector<std::string> allowed = writable ? rule.writable : rule.readable;
  // --dev-bind exists to bind device nodes: the policy's dev_bind already
  // decided that this caller may, so /dev is a source it may use.
  if (op.kind == MountKind::DevBind) allowed.push_back("/dev");
  // A source that is not a plain path (deleted, on another mount namespace's
  // detached tree) cannot be judged, so it is refused.
  const bool plain = real.starts_with("/") && !real.ends_with(" (deleted)");
  if (plain && std::any_of(allowed.begin(), allowed.end(),
                           [&](const std::string& p) { return underPrefix(real, p); }))
    return;
  std::string list;
  for (const std::string& p : allowed) list += (list.empty() ? "" : " ") + p;
  throw Error(describeMount(op) + ": refused: " + (writable ? "writable " : "") +
              "bind sources must lie under " + (list.empty() ? "(nothing)" : list) +
              " for this caller (policy " + (writable ? "writable_bind_sources" : "bind_sources") +
              ", " + rule.where + "); " + op.source + (real == op.source ? "" : " is " + real));
}

}  // namespace gpubox
