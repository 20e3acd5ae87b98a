#include "fake_driver.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace gpubox::testing {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

// Real-looking PCI addresses of a 4-GPU server (and more for 8).
constexpr const char* kBusIds[] = {"0000:3b:00.0", "0000:5e:00.0", "0000:86:00.0", "0000:af:00.0",
                                   "0000:18:00.0", "0000:db:00.0", "0001:3b:00.0", "0001:5e:00.0"};

std::string uuidFor(unsigned i) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "GPU-%08x-1111-2222-3333-44445555%04x", 0xabc00000u + i * 0x1011u,
                i);
  return buf;
}

// The real file's layout: "Key:" then tabs/spaces, then the value.
std::string informationFor(const FakeGpu& g) {
  return "Model: \t\t " + g.model +
         "\n"
         "IRQ:   \t\t 1" +
         std::to_string(40 + g.minor) +
         "\n"
         "GPU UUID: \t " +
         g.uuid +
         "\n"
         "Video BIOS: \t 96.00.99.00.01\n"
         "Bus Type: \t PCIe\n"
         "DMA Size: \t 52 bits\n"
         "DMA Mask: \t 0xfffffffffffff\n"
         "Bus Location: \t " +
         g.busId +
         "\n"
         "Device Minor: \t " +
         std::to_string(g.minor) +
         "\n"
         "GPU Excluded:\t No\n";
}

constexpr const char* kParams =
    "ResmanDebugLevel: 4294967295\n"
    "RmLogonRC: 1\n"
    "ModifyDeviceFiles: 1\n"
    "DeviceFileUID: 0\n"
    "DeviceFileGID: 0\n"
    "DeviceFileMode: 438\n"
    "InitializeSystemMemoryAllocations: 1\n"
    "UsePageAttributeTable: 4294967295\n"
    "EnableMSI: 1\n";

void put32(std::string& s, uint32_t v) {
  s.append(reinterpret_cast<const char*>(&v), 4);
}

}  // namespace

bool FakeDriverRoot::canMknod() {
  return ::geteuid() == 0;
}

std::string FakeDriverRoot::ldCacheImage(
    const std::vector<std::pair<std::string, std::string>>& entries) {
  // glibc's cache_file_new: 48-byte header, 24-byte entries, then strings;
  // string offsets are from the start of the header.
  std::string strings;
  std::vector<std::pair<uint32_t, uint32_t>> offs;
  size_t base = 48 + 24 * entries.size();
  for (auto& [soname, path] : entries) {
    uint32_t k = static_cast<uint32_t>(base + strings.size());
    strings += soname;
    strings += '\0';
    uint32_t v = static_cast<uint32_t>(base + strings.size());
    strings += path;
    strings += '\0';
    offs.emplace_back(k, v);
  }
  std::string out = "glibc-ld.so.cache1.1";
  put32(out, static_cast<uint32_t>(entries.size()));
  put32(out, static_cast<uint32_t>(strings.size()));
  out += std::string(4, '\0');  // flags (u8) + padding
  put32(out, 0);                // extension_offset: none
  out += std::string(12, '\0');
  for (auto& [k, v] : offs) {
    put32(out, 0x0303);  // FLAG_ELF_LIBC6 | FLAG_X8664_LIB64
    put32(out, k);
    put32(out, v);
    put32(out, 0);                // osversion
    out += std::string(8, '\0');  // hwcap
  }
  return out + strings;
}

FakeDriverRoot::FakeDriverRoot(const Options& options) : options_(options) {
  if (options_.gpus > 8) throw std::runtime_error("FakeDriverRoot: at most 8 GPUs");
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/gpubox-fake-driver-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) fail("mkdtemp " + tmpl);
  root_ = buf.data();
  try {
    // World-readable: a helper serving uid 65534 must be able to follow it.
    if (::chmod(root_.c_str(), 0755) != 0) fail("chmod " + root_);
    build();
  } catch (...) {
    std::error_code ec;
    fs::remove_all(root_, ec);
    throw;
  }
}

FakeDriverRoot::~FakeDriverRoot() {
  std::error_code ec;  // a destructor must not throw; leftovers live in TMPDIR
  fs::remove_all(root_, ec);
}

std::string FakeDriverRoot::path(std::string_view rel) const {
  return root_ + "/" + std::string(rel);
}

void FakeDriverRoot::mkdirs(std::string_view rel) {
  std::error_code ec;
  fs::create_directories(path(rel), ec);
  if (ec) throw std::runtime_error("mkdir " + path(rel) + ": " + ec.message());
  // create_directories honours the umask; make every level traversable.
  fs::path p = rel;
  fs::path acc;
  for (const auto& part : p) {
    acc /= part;
    ::chmod(path(acc.string()).c_str(), 0755);
  }
}

void FakeDriverRoot::writeFile(std::string_view rel, std::string_view contents, unsigned mode) {
  fs::path p(rel);
  if (p.has_parent_path()) mkdirs(p.parent_path().string());
  std::string full = path(rel);
  int fd = ::open(full.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) fail("open " + full);
  size_t off = 0;
  while (off < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + off, contents.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      errno = e;
      fail("write " + full);
    }
    off += static_cast<size_t>(n);
  }
  if (::fchmod(fd, mode) != 0 || ::close(fd) != 0) fail("close " + full);
}

void FakeDriverRoot::mknodChar(std::string_view rel, unsigned major, unsigned minor,
                               unsigned mode) {
  fs::path p(rel);
  if (p.has_parent_path()) mkdirs(p.parent_path().string());
  std::string full = path(rel);
  ::unlink(full.c_str());
  if (::mknod(full.c_str(), S_IFCHR | mode, makedev(major, minor)) != 0) fail("mknod " + full);
  ::chmod(full.c_str(), mode);
}

void FakeDriverRoot::symlink(std::string_view target, std::string_view rel) {
  fs::path p(rel);
  if (p.has_parent_path()) mkdirs(p.parent_path().string());
  std::string full = path(rel);
  ::unlink(full.c_str());
  if (::symlink(std::string(target).c_str(), full.c_str()) != 0) fail("symlink " + full);
}

void FakeDriverRoot::remove(std::string_view rel) {
  std::error_code ec;
  fs::remove_all(path(rel), ec);
  if (ec) throw std::runtime_error("remove " + path(rel) + ": " + ec.message());
}

void FakeDriverRoot::build() {
  const Options& o = options_;
  const bool nodes = o.nodes;
  if (nodes && !canMknod())
    throw std::runtime_error("FakeDriverRoot: device nodes need root (pass .nodes = false)");

  for (unsigned i = 0; i < o.gpus; ++i)
    gpus_.push_back(FakeGpu{i, kBusIds[i], uuidFor(i), "NVIDIA Fake H100 " + std::to_string(i)});

  // proc: the driver's own description.
  writeFile("proc/driver/nvidia/version",
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  " + o.driverVersion +
                "  Thu Feb 22 01:44:30 UTC 2024\n"
                "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n");
  writeFile("proc/driver/nvidia/params", kParams);
  writeFile("proc/driver/nvidia/registry", "Binary: \"\"\n");
  std::string devices = "Character devices:\n  1 mem\n  4 /dev/vc/0\n  5 /dev/tty\n";
  devices += "195 nvidia-frontend\n";
  devices += std::to_string(kCapsMajor) + " nvidia-caps\n";
  if (o.uvm) devices += std::to_string(kUvmMajor) + " nvidia-uvm\n";
  devices += "\nBlock devices:\n  8 sd\n259 blkext\n";
  writeFile("proc/devices", devices);
  mkdirs("proc/driver/nvidia/gpus");
  for (const FakeGpu& g : gpus_) {
    writeFile("proc/driver/nvidia/gpus/" + g.busId + "/information", informationFor(g));
    // sysfs: the device directory and the bus's link to it, as the kernel
    // lays them out; plus one non-GPU device that must stay hidden.
    std::string dev = "sys/devices/pci0000:00/" + g.busId;
    writeFile(dev + "/vendor", "0x10de\n");
    writeFile(dev + "/device", "0x2330\n");
    symlink("../../../devices/pci0000:00/" + g.busId, "sys/bus/pci/devices/" + g.busId);
  }
  writeFile("sys/devices/pci0000:00/0000:00:1f.0/vendor", "0x8086\n");
  symlink("../../../devices/pci0000:00/0000:00:1f.0", "sys/bus/pci/devices/0000:00:1f.0");

  // MIG: one compute instance on the chosen GPU, plus the host-wide caps.
  if (o.migOnGpu) {
    if (*o.migOnGpu >= o.gpus) throw std::runtime_error("FakeDriverRoot: migOnGpu out of range");
    std::string caps = "proc/driver/nvidia/capabilities/";
    std::string gi = caps + "gpu" + std::to_string(*o.migOnGpu) + "/mig/gi1";
    auto access = [](unsigned minor) {
      return "DeviceFileMinor: " + std::to_string(minor) +
             "\nDeviceFileMode: 292\nDeviceFileModify: 1\n";
    };
    writeFile(gi + "/access", access(kMigGiCapMinor));
    writeFile(gi + "/ci0/access", access(kMigCiCapMinor));
    writeFile(caps + "mig/config", access(1));
    writeFile(caps + "mig/monitor", access(2));
    if (nodes) {
      for (unsigned m : {1u, 2u, kMigGiCapMinor, kMigCiCapMinor})
        mknodChar("dev/nvidia-caps/nvidia-cap" + std::to_string(m), kCapsMajor, m, 0444);
    }
  }

  if (nodes) {
    for (const FakeGpu& g : gpus_) {
      unsigned minor = o.wrongRdevGpu && *o.wrongRdevGpu == g.minor ? g.minor + 100 : g.minor;
      mknodChar("dev/nvidia" + std::to_string(g.minor), kNvidiaMajor, minor);
    }
    if (o.ctl) mknodChar("dev/nvidiactl", kNvidiaMajor, 255);
    if (o.modeset) mknodChar("dev/nvidia-modeset", kNvidiaMajor, 254);
    if (o.uvm) {
      mknodChar("dev/nvidia-uvm", kUvmMajor, 0);
      mknodChar("dev/nvidia-uvm-tools", kUvmMajor, 1);
    }
  }

  if (o.libraries) {
    std::string dir = !o.libraryDir.empty() ? o.libraryDir
                      : o.ldCache           ? "usr/lib/x86_64-linux-gnu/nvidia/current"
                                            : "usr/lib/x86_64-linux-gnu";
    for (const char* lib : {"libcuda", "libnvidia-ml", "libnvidia-ptxjitcompiler", "libnvidia-nvvm",
                            "libnvidia-gpucomp"}) {
      std::string file = std::string(lib) + ".so." + o.driverVersion;
      writeFile(dir + "/" + file, "fake " + file + "\n");
    }
    if (!o.libcudaFile.empty()) {
      std::error_code ec;
      fs::copy_file(o.libcudaFile, path(dir + "/libcuda.so." + o.driverVersion),
                    fs::copy_options::overwrite_existing, ec);
      if (ec) throw std::runtime_error("copy " + o.libcudaFile + ": " + ec.message());
      fs::permissions(path(dir + "/libcuda.so." + o.driverVersion), fs::perms(0755), ec);
    }
    symlink("libcuda.so." + o.driverVersion, dir + "/libcuda.so.1");
    // A leftover from an older driver: must not be picked.
    writeFile("usr/lib64/libnvidia-cfg.so.535.104.05", "fake stale libnvidia-cfg\n");
    writeFile("usr/lib64/libcuda.so.535.104.05", "fake stale libcuda\n");
    if (o.ldCache || !o.libraryDir.empty()) {
      writeFile("etc/ld.so.cache",
                ldCacheImage({{"libnvidia-ml.so.1", "/" + dir + "/libnvidia-ml.so.1"},
                              {"libcuda.so.1", "/" + dir + "/libcuda.so.1"},
                              {"libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"}}));
    }
  }
  if (o.nvidiaSmi) {
    // Runs inside sandboxes in integration tests: shows what GPUs are visible.
    writeFile("usr/bin/nvidia-smi",
              "#!/bin/sh\necho 'fake nvidia-smi'\nls /proc/driver/nvidia/gpus 2>/dev/null\n", 0755);
  }
  if (!o.nvidiaSmiProgram.empty()) {
    if (o.libraryDir.empty()) throw std::runtime_error("nvidiaSmiProgram needs a libraryDir");
    std::string bin = o.libraryDir.substr(0, o.libraryDir.rfind('/') + 1) + "bin";
    mkdirs(bin);
    std::error_code ec;
    fs::copy_file(o.nvidiaSmiProgram, path(bin + "/nvidia-smi"),
                  fs::copy_options::overwrite_existing, ec);
    if (ec) throw std::runtime_error("copy " + o.nvidiaSmiProgram + ": " + ec.message());
    fs::permissions(path(bin + "/nvidia-smi"), fs::perms(0755), ec);
  }
  for (const auto& [rel, contents] : o.cdiFiles) writeFile(rel, contents);
}

}  // namespace gpubox::testing
