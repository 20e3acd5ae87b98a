// A classic-BPF interpreter for seccomp programs, enough for what libseccomp
// emits: it lets a test ask what a filter returns for a system call of any
// architecture, without installing it (and without an aarch64 machine).
#pragma once

#include <linux/filter.h>
#include <linux/seccomp.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace gpubox::test {

inline uint32_t runSeccompBpf(const std::vector<sock_filter>& prog, const seccomp_data& data) {
  uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {};
  auto word = [&](uint32_t offset) {
    if (offset + 4 > sizeof(data) || offset % 4) throw std::runtime_error("bad load offset");
    uint32_t v;
    std::memcpy(&v, reinterpret_cast<const char*>(&data) + offset, 4);
    return v;
  };
  for (size_t pc = 0; pc < prog.size(); ++pc) {
    const sock_filter& f = prog[pc];
    const uint32_t src = BPF_SRC(f.code) == BPF_X ? x : f.k;
    switch (BPF_CLASS(f.code)) {
      case BPF_LD:
        if (BPF_MODE(f.code) == BPF_ABS)
          a = word(f.k);
        else if (BPF_MODE(f.code) == BPF_IMM)
          a = f.k;
        else if (BPF_MODE(f.code) == BPF_MEM)
          a = mem[f.k % BPF_MEMWORDS];
        else
          throw std::runtime_error("unsupported BPF_LD mode");
        break;
      case BPF_LDX:
        if (BPF_MODE(f.code) == BPF_IMM)
          x = f.k;
        else if (BPF_MODE(f.code) == BPF_MEM)
          x = mem[f.k % BPF_MEMWORDS];
        else
          throw std::runtime_error("unsupported BPF_LDX mode");
        break;
      case BPF_ST:
        mem[f.k % BPF_MEMWORDS] = a;
        break;
      case BPF_STX:
        mem[f.k % BPF_MEMWORDS] = x;
        break;
      case BPF_ALU:
        switch (BPF_OP(f.code)) {
          case BPF_ADD:
            a += src;
            break;
          case BPF_SUB:
            a -= src;
            break;
          case BPF_AND:
            a &= src;
            break;
          case BPF_OR:
            a |= src;
            break;
          case BPF_LSH:
            a <<= src;
            break;
          case BPF_RSH:
            a >>= src;
            break;
          case BPF_NEG:
            a = -a;
            break;
          default:
            throw std::runtime_error("unsupported BPF_ALU op");
        }
        break;
      case BPF_JMP: {
        if (BPF_OP(f.code) == BPF_JA) {
          pc += f.k;
          break;
        }
        bool taken = false;
        switch (BPF_OP(f.code)) {
          case BPF_JEQ:
            taken = a == src;
            break;
          case BPF_JGT:
            taken = a > src;
            break;
          case BPF_JGE:
            taken = a >= src;
            break;
          case BPF_JSET:
            taken = (a & src) != 0;
            break;
          default:
            throw std::runtime_error("unsupported BPF_JMP op");
        }
        pc += taken ? f.jt : f.jf;
        break;
      }
      case BPF_RET:
        return BPF_RVAL(f.code) == BPF_A ? a : f.k;
      case BPF_MISC:
        if (BPF_MISCOP(f.code) == BPF_TAX)
          x = a;
        else
          a = x;
        break;
      default:
        throw std::runtime_error("unsupported BPF class");
    }
  }
  throw std::runtime_error("BPF program ran off its end");
}

}  // namespace gpubox::test
