#include "init_config_codec.hpp"

#include <cstring>
#include <type_traits>

#include "error.hpp"

namespace gpubox {

// A field added to InitConfig or MountOp and not to the codec would be lost
// on the way to every init. These sizes (LP64 with libstdc++) make that a
// compile error: on a new field, encode and decode it, extend the round-trip
// test (tests/unit/sandbox/init_config_codec_test.cpp), then update them.
#if defined(__GLIBCXX__) && __SIZEOF_POINTER__ == 8
static_assert(sizeof(InitConfig) == 384, "InitConfig changed: update init_config_codec.cpp");
static_assert(sizeof(MountOp) == 128, "MountOp changed: update init_config_codec.cpp");
#endif

namespace {

class Writer {
 public:
  template <typename T>
  requires std::is_integral_v<T>
  void num(T value) {
    uint64_t v = static_cast<uint64_t>(value);
    char bytes[8];
    for (char& b : bytes) {
      b = static_cast<char>(v & 0xff);
      v >>= 8;
    }
    out_.append(bytes, sizeof(bytes));
  }
  void str(const std::string& s) {
    num(s.size());
    out_ += s;
  }
  void program(const std::vector<sock_filter>& program) {
    num(program.size());
    for (const sock_filter& f : program) {
      num(f.code);
      num(f.jt);
      num(f.jf);
      num(f.k);
    }
  }
  void strings(const std::vector<std::string>& list) {
    num(list.size());
    for (const std::string& s : list) str(s);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  requires std::is_integral_v<T> T num() {
    need(8);
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(in_[pos_ + i]);
    pos_ += 8;
    if constexpr (std::is_same_v<T, bool>) {
      if (v > 1) fail("a flag is neither 0 nor 1");
      return v == 1;
    } else {
      if (static_cast<uint64_t>(static_cast<T>(v)) != v) fail("a number is out of range");
      return static_cast<T>(v);
    }
  }
  std::string str() {
    const size_t n = count(1);
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  std::vector<sock_filter> program() {
    std::vector<sock_filter> out(count(4 * 8));
    for (sock_filter& f : out) {
      f.code = num<uint16_t>();
      f.jt = num<uint8_t>();
      f.jf = num<uint8_t>();
      f.k = num<uint32_t>();
    }
    return out;
  }
  std::vector<std::string> strings() {
    std::vector<std::string> list(count(8));
    for (std::string& s : list) s = str();
    return list;
  }
  // A count of items at least MINSIZE bytes each: never more than what is left.
  size_t count(size_t minSize) {
    const size_t n = num<size_t>();
    if (n > (in_.size() - pos_) / minSize) fail("a count runs past the end");
    return n;
  }
  void end() const {
    if (pos_ != in_.size()) fail("trailing bytes");
  }

 private:
  void need(size_t n) const {
    if (in_.size() - pos_ < n) fail("truncated");
  }
  [[noreturn]] static void fail(const std::string& why) {
    throw Error("malformed sandbox configuration: " + why);
  }
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace

std::string encodeInitConfig(const InitConfig& c) {
  Writer w;
  w.num(c.uid);
  w.num(c.gid);
  w.num(c.groups.size());
  for (gid_t g : c.groups) w.num(g);
  w.num(c.sandboxUid);
  w.num(c.sandboxGid);
  w.str(c.hostname);
  w.num(c.newNetwork);
  w.num(c.newUserNamespace);
  w.num(c.plan.size());
  for (const MountOp& op : c.plan) {
    w.num(static_cast<int>(op.kind));
    w.str(op.source);
    w.str(op.dest);
    w.num(op.mode.has_value());
    w.num(op.mode.value_or(0));
    w.num(op.sizeBytes);
    w.num(op.ifSourceExists);
    w.num(op.sourceInode.has_value());
    w.num(op.sourceInode ? op.sourceInode->dev : 0);
    w.num(op.sourceInode ? op.sourceInode->ino : 0);
    w.num(op.optional);
    w.num(op.skipIfVisible);
    w.num(op.hardened);
    w.num(op.checkSource);
  }
  w.num(c.masks.size());
  for (const MaskedSocket& m : c.masks) {
    w.str(m.path);
    w.num(m.dev);
    w.num(m.ino);
  }
  w.str(c.defaultCwd);
  w.num(c.rlimits.size());
  for (const RlimitSetting& r : c.rlimits) {
    w.str(r.name);
    w.num(r.soft);
    w.num(r.hard);
  }
  w.num(c.awaitPlacement);
  w.program(c.seccomp);
  w.num(c.callerSeccomp.size());
  for (const std::vector<sock_filter>& program : c.callerSeccomp) w.program(program);
  w.strings(c.lockFiles);
  w.strings(c.hide);
  w.num(c.bindSources.has_value());
  if (c.bindSources) {
    w.strings(c.bindSources->readable);
    w.strings(c.bindSources->writable);
    w.str(c.bindSources->where);
  }
  w.num(c.asPid1);
  return w.take();
}

InitConfig decodeInitConfig(std::string_view bytes) {
  Reader r(bytes);
  InitConfig c;
  c.uid = r.num<uid_t>();
  c.gid = r.num<gid_t>();
  c.groups.resize(r.count(8));
  for (gid_t& g : c.groups) g = r.num<gid_t>();
  c.sandboxUid = r.num<uid_t>();
  c.sandboxGid = r.num<gid_t>();
  c.hostname = r.str();
  c.newNetwork = r.num<bool>();
  c.newUserNamespace = r.num<bool>();
  c.plan.resize(r.count(14 * 8));
  for (MountOp& op : c.plan) {
    const int kind = r.num<int>();
    if (kind < 0 || kind > static_cast<int>(MountKind::LoaderCache))
      throw Error("malformed sandbox configuration: unknown mount kind");
    op.kind = static_cast<MountKind>(kind);
    op.source = r.str();
    op.dest = r.str();
    const bool hasMode = r.num<bool>();
    const unsigned mode = r.num<unsigned>();
    if (hasMode) op.mode = mode;
    op.sizeBytes = r.num<uint64_t>();
    op.ifSourceExists = r.num<bool>();
    const bool hasInode = r.num<bool>();
    const InodeId inode{r.num<uint64_t>(), r.num<uint64_t>()};
    if (hasInode) op.sourceInode = inode;
    op.optional = r.num<bool>();
    op.skipIfVisible = r.num<bool>();
    op.hardened = r.num<bool>();
    op.checkSource = r.num<bool>();
  }
  c.masks.resize(r.count(3 * 8));
  for (MaskedSocket& m : c.masks) {
    m.path = r.str();
    m.dev = r.num<dev_t>();
    m.ino = r.num<ino_t>();
  }
  c.defaultCwd = r.str();
  c.rlimits.resize(r.count(3 * 8));
  for (RlimitSetting& rl : c.rlimits) {
    rl.name = r.str();
    rl.soft = r.num<uint64_t>();
    rl.hard = r.num<uint64_t>();
  }
  c.awaitPlacement = r.num<bool>();
  c.seccomp = r.program();
  c.callerSeccomp.resize(r.count(8));
  for (std::vector<sock_filter>& program : c.callerSeccomp) program = r.program();
  c.lockFiles = r.strings();
  c.hide = r.strings();
  if (r.num<bool>()) {
    BindSourceRule rule;
    rule.readable = r.strings();
    rule.writable = r.strings();
    rule.where = r.str();
    c.bindSources = std::move(rule);
  }
  c.asPid1 = r.num<bool>();
  r.end();
  return c;
}

}  // namespace gpubox
