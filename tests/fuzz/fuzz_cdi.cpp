#include "fuzz_cdi.hpp"

#include <string>
#include <vector>

#include "cdi.hpp"
#include "error.hpp"
#include "fuzz_check.hpp"
#include "spec.hpp"

namespace gpubox::fuzz {

namespace {

constexpr const char* kWhere = "/etc/cdi/fuzz";

bool startsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool validAbsolute(const std::string& path) {
  try {
    validateAbsolutePath(path, "path");
    return true;
  } catch (const Error&) {
    return false;
  }
}

bool validEnv(const std::string& kv) {
  size_t eq = kv.find('=');
  return eq != 0 && eq != std::string::npos && kv.find('\0') == std::string::npos;
}

}  // namespace

void checkCdiSpec(const uint8_t* data, size_t size, bool yaml) {
  // discoverCdi never reads more of a file than this.
  if (size > gpu::kMaxCdiFile) return;
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> warnings;
  std::vector<gpu::CdiDevice> devices;
  try {
    // The host's root: device nodes and mount sources are stat()ed (only),
    // so a spec naming /dev/null or /etc reaches the accepting paths.
    devices = gpu::parseCdiSpec(text, yaml, kWhere, "/", warnings);
  } catch (const Error& e) {
    FUZZ_CHECK(startsWith(e.what(), kWhere));
    return;
  }
  for (const std::string& w : warnings) FUZZ_CHECK(startsWith(w, kWhere));
  for (const gpu::CdiDevice& dev : devices) {
    FUZZ_CHECK(startsWith(dev.name, std::string(gpu::kCdiKind) + "="));
    FUZZ_CHECK(dev.name.size() > std::string(gpu::kCdiKind).size() + 1);
    FUZZ_CHECK(dev.specFile == kWhere);
    // Nothing writable, nothing relative, nothing that is not a char device.
    for (const MountOp& m : dev.mounts) {
      FUZZ_CHECK(m.kind == MountKind::RoBind);
      FUZZ_CHECK(validAbsolute(m.source) && validAbsolute(m.dest));
    }
    for (const gpu::DeviceNode& n : dev.nodes)
      FUZZ_CHECK(validAbsolute(n.hostPath) && validAbsolute(n.sandboxPath));
    for (const std::string& kv : dev.env) FUZZ_CHECK(validEnv(kv));
  }
}

}  // namespace gpubox::fuzz
