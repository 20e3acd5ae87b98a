// parseMountInfo (helper/sandbox/mountinfo.hpp): every sandbox whose plan
// binds a directory with mounts below it reads its own mount table through
// it to find the procfs mounts it must cover, so a misread line is a procfs
// left uncovered.
//
// Invariants beyond "no crash":
//  - every entry has a root, a mount point and a type, and no type holds a
//    space or a newline (the fields are split on them);
//  - writing the entries back as the kernel would (octal escapes for space,
//    tab, newline and backslash) and parsing that again gives the same
//    entries: no field is cut, joined with another or decoded twice.
#include <sys/sysmacros.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "mountinfo.hpp"

namespace {

std::string escaped(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\\') {
      char code[5];
      std::snprintf(code, sizeof code, "\\%03o", static_cast<unsigned char>(c));
      out += code;
    } else {
      out += c;
    }
  }
  return out;
}

std::string asKernelWouldWrite(const std::vector<gpubox::MountInfoEntry>& entries) {
  std::string text;
  for (const gpubox::MountInfoEntry& e : entries)
    text += std::to_string(e.id) + " " + std::to_string(e.parent) + " " +
            std::to_string(major(e.dev)) + ":" + std::to_string(minor(e.dev)) + " " +
            escaped(e.root) + " " + escaped(e.mountPoint) + " rw shared:1 - " + e.fsType +
            " none rw\n";
  return text;
}

bool same(const gpubox::MountInfoEntry& a, const gpubox::MountInfoEntry& b) {
  return a.id == b.id && a.parent == b.parent && a.dev == b.dev && a.root == b.root &&
         a.mountPoint == b.mountPoint && a.fsType == b.fsType;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::vector<gpubox::MountInfoEntry> entries = gpubox::parseMountInfo(text);
  for (const gpubox::MountInfoEntry& e : entries) {
    FUZZ_CHECK(!e.root.empty());
    FUZZ_CHECK(!e.mountPoint.empty());
    FUZZ_CHECK(!e.fsType.empty());
    FUZZ_CHECK(e.fsType.find_first_of(" \n") == std::string::npos);
  }
  const std::vector<gpubox::MountInfoEntry> again =
      gpubox::parseMountInfo(asKernelWouldWrite(entries));
  FUZZ_CHECK(again.size() == entries.size());
  for (size_t i = 0; i < again.size(); ++i) FUZZ_CHECK(same(again[i], entries[i]));
  return 0;
}
