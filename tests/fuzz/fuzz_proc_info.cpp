// The NVIDIA driver's procfs files and /proc/devices: every parser in
// proc_info.hpp gets the same text (each reads only the lines it knows, so
// one input exercises all four).
//
// Invariants beyond "no crash":
//  - information: throws nothing but gpubox::Error naming the file; a parsed
//    GPU has a minor below 254, a valid lowercase bus id or none, and a UUID
//    that is empty or "GPU-" + hex digits and dashes;
//  - version: only digits and dots, with a dot, never at either end;
//  - devices: majors fit the kernel's 12 bits, names are non-empty;
//  - params: the rewrite sets ModifyDeviceFiles to 0 exactly once, and
//    rewriting its own output changes nothing.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "error.hpp"
#include "fuzz_check.hpp"
#include "proc_info.hpp"

namespace {

constexpr const char* kWhere = "/proc/driver/nvidia/fuzz";

bool startsWith(const std::string& s, std::string_view prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool uuidOk(const std::string& uuid) {
  if (uuid.empty()) return true;
  if (!startsWith(uuid, "GPU-") || uuid.size() > 80) return false;
  for (char c : std::string_view(uuid).substr(4))
    if (!std::isxdigit(static_cast<unsigned char>(c)) && c != '-') return false;
  return true;
}

void checkInformation(std::string_view text) {
  gpubox::gpu::GpuInfo info;
  try {
    info = gpubox::gpu::parseInformation(text, kWhere);
  } catch (const gpubox::Error& e) {
    FUZZ_CHECK(startsWith(e.what(), kWhere));
    return;
  }
  FUZZ_CHECK(info.minor < 254);
  FUZZ_CHECK(info.busId.empty() || gpubox::gpu::isValidBusId(info.busId));
  FUZZ_CHECK(info.busId == gpubox::gpu::lowercase(info.busId));
  FUZZ_CHECK(uuidOk(info.uuid));
  FUZZ_CHECK(info.model.size() <= 256);
}

void checkVersion(std::string_view text) {
  std::string version;
  try {
    version = gpubox::gpu::parseDriverVersion(text, kWhere);
  } catch (const gpubox::Error& e) {
    FUZZ_CHECK(startsWith(e.what(), kWhere));
    return;
  }
  // It becomes part of library file names: nothing but digits and dots.
  FUZZ_CHECK(!version.empty() && version.size() <= 32);
  FUZZ_CHECK(version.front() != '.' && version.back() != '.');
  FUZZ_CHECK(version.find('.') != std::string::npos);
  FUZZ_CHECK(version.find("..") == std::string::npos);
  for (char c : version) FUZZ_CHECK(c == '.' || (c >= '0' && c <= '9'));
}

void checkCharMajors(std::string_view text) {
  for (const auto& [name, major] : gpubox::gpu::parseCharMajors(text)) {
    FUZZ_CHECK(!name.empty());
    FUZZ_CHECK(major <= 4095);
  }
}

size_t countModifyLines(std::string_view params) {
  size_t n = 0;
  for (size_t pos = params.find("ModifyDeviceFiles: 0\n"); pos != std::string_view::npos;
       pos = params.find("ModifyDeviceFiles: 0\n", pos + 1))
    if (pos == 0 || params[pos - 1] == '\n') ++n;
  return n;
}

void checkParams(std::string_view text) {
  std::string once = gpubox::gpu::paramsWithoutModifyDeviceFiles(text);
  FUZZ_CHECK(countModifyLines(once) >= 1);
  FUZZ_CHECK(gpubox::gpu::paramsWithoutModifyDeviceFiles(once) == once);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  checkInformation(text);
  checkVersion(text);
  checkCharMajors(text);
  checkParams(text);
  return 0;
}
