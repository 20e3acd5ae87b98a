#include "device_bpf.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <list>
#include <mutex>
#include <string>

#include "error.hpp"

namespace gpubox::cgroup {

namespace {

// Instruction encoders (the kernel's filter.h macros are not UAPI).
bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}
bpf_insn loadWord(uint8_t dst, uint8_t src, int16_t off) {
  return insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0);
}
bpf_insn alu32Imm(uint8_t op, uint8_t dst, int32_t imm) {
  return insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm);
}
bpf_insn mov32Reg(uint8_t dst, uint8_t src) {
  return insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0);
}
bpf_insn mov64Imm(uint8_t dst, int32_t imm) {
  return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm);
}
bpf_insn jumpIfNotEqual(uint8_t dst, int32_t imm, int16_t off) {
  return insn(BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm);
}
bpf_insn exitInsn() {
  return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

// Registers after the prologue.
constexpr uint8_t kType = 2, kAccess = 3, kMajor = 4, kMinor = 5, kScratch = 1;

int32_t accessMask(const std::string& access) {
  int32_t mask = 0;
  for (char c : access) {
    if (c == 'r') mask |= BPF_DEVCG_ACC_READ;
    if (c == 'w') mask |= BPF_DEVCG_ACC_WRITE;
    if (c == 'm') mask |= BPF_DEVCG_ACC_MKNOD;
  }
  return mask;
}

// One rule: a run of "if (field != value) skip to the next rule" checks,
// then "return VERDICT". The skip offsets are patched once the block's
// length is known.
void emitRule(std::vector<bpf_insn>& out, const DeviceRule& rule, int verdict) {
  std::vector<bpf_insn> block;
  std::vector<size_t> skips;
  if (rule.type != 'a') {
    skips.push_back(block.size());
    block.push_back(
        jumpIfNotEqual(kType, rule.type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR, 0));
  }
  const int32_t mask = accessMask(rule.access);
  constexpr int32_t kAll = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;
  if (mask != kAll) {
    // Matches only when every requested access bit is in the rule's mask.
    block.push_back(mov32Reg(kScratch, kAccess));
    block.push_back(alu32Imm(BPF_AND, kScratch, ~mask & kAll));
    skips.push_back(block.size());
    block.push_back(jumpIfNotEqual(kScratch, 0, 0));
  }
  if (rule.major >= 0) {
    skips.push_back(block.size());
    block.push_back(jumpIfNotEqual(kMajor, rule.major, 0));
  }
  if (rule.minor >= 0) {
    skips.push_back(block.size());
    block.push_back(jumpIfNotEqual(kMinor, rule.minor, 0));
  }
  block.push_back(mov64Imm(0, verdict));
  block.push_back(exitInsn());
  for (size_t at : skips) block[at].off = static_cast<int16_t>(block.size() - at - 1);
  out.insert(out.end(), block.begin(), block.end());
}

long bpf(int cmd, bpf_attr& attr) {
  return ::syscall(__NR_bpf, cmd, &attr, sizeof attr);
}

}  // namespace

std::vector<bpf_insn> buildDeviceProgram(const std::vector<DeviceRule>& allow,
                                         const std::vector<DeviceRule>& deny, bool defaultAllow) {
  std::vector<bpf_insn> program;
  // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
  // access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*
  program.push_back(loadWord(kType, 1, 0));
  program.push_back(alu32Imm(BPF_AND, kType, 0xffff));
  program.push_back(loadWord(kAccess, 1, 0));
  program.push_back(alu32Imm(BPF_RSH, kAccess, 16));
  program.push_back(loadWord(kMajor, 1, 4));
  program.push_back(loadWord(kMinor, 1, 8));
  for (const DeviceRule& rule : allow) emitRule(program, rule, 1);
  for (const DeviceRule& rule : deny) emitRule(program, rule, 0);
  program.push_back(mov64Imm(0, defaultAllow ? 1 : 0));
  program.push_back(exitInsn());
  return program;
}

UniqueFd loadDeviceProgram(const std::vector<bpf_insn>& program) {
  static const char kLicense[] = "Apache-2.0";  // the program calls no GPL-only helper
  std::string log(64 * 1024, '\0');
  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = reinterpret_cast<uintptr_t>(program.data());
  attr.insn_cnt = static_cast<uint32_t>(program.size());
  attr.license = reinterpret_cast<uintptr_t>(kLicense);
  attr.log_buf = reinterpret_cast<uintptr_t>(log.data());
  attr.log_size = static_cast<uint32_t>(log.size());
  attr.log_level = 1;
  std::strncpy(attr.prog_name, "gpubox_devices", sizeof attr.prog_name - 1);
  const long fd = bpf(BPF_PROG_LOAD, attr);
  if (fd < 0) {
    const int err = errno;
    std::string message = errnoMessage("loading the BPF device program (BPF_PROG_LOAD)", err);
    if (err == EPERM)
      message +=
          " (needs CAP_SYS_ADMIN or CAP_BPF; on kernels before 5.11 also a "
          "large enough RLIMIT_MEMLOCK)";
    log.resize(std::strlen(log.c_str()));
    if (!log.empty()) message += "; verifier: " + log;
    throw Error(message);
  }
  return UniqueFd(static_cast<int>(fd));
}

int attachDeviceProgram(int cgroupFd, int programFd) noexcept {
  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.target_fd = static_cast<uint32_t>(cgroupFd);
  attr.attach_bpf_fd = static_cast<uint32_t>(programFd);
  attr.attach_type = BPF_CGROUP_DEVICE;
  // No BPF_F_ALLOW_MULTI/OVERRIDE: no cgroup below the sandbox's may attach
  // a device program of its own. (With MULTI it still could not loosen these
  // rules, since every program must allow; there is just no reason to.)
  attr.attach_flags = 0;
  return bpf(BPF_PROG_ATTACH, attr) == 0 ? 0 : errno;
}

std::string attachFailure(int err) {
  return errnoMessage("attaching the BPF device program to the sandbox cgroup (BPF_PROG_ATTACH)",
                      err);
}

std::shared_ptr<const UniqueFd> loadDeviceProgramShared(const std::vector<bpf_insn>& program) {
  static std::mutex mutex;
  // Most recently used last.
  static std::list<std::pair<std::string, std::shared_ptr<const UniqueFd>>> loaded;
  constexpr size_t kKept = 32;
  std::string key(reinterpret_cast<const char*>(program.data()), program.size() * sizeof(bpf_insn));
  std::lock_guard lock(mutex);
  for (auto it = loaded.begin(); it != loaded.end(); ++it) {
    if (it->first == key) {
      loaded.splice(loaded.end(), loaded, it);
      return loaded.back().second;
    }
  }
  auto fd = std::make_shared<const UniqueFd>(loadDeviceProgram(program));
  loaded.emplace_back(std::move(key), fd);
  if (loaded.size() > kKept) loaded.pop_front();
  return fd;
}

}  // namespace gpubox::cgroup
