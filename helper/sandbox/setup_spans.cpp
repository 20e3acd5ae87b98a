#include "setup_spans.hpp"

#include <cstring>
#include <utility>

#include "span_clock.hpp"
#include "span_trace.hpp"

namespace gpubox::setupspans {

namespace {
std::vector<std::pair<const char*, uint64_t>>& steps() {
  static std::vector<std::pair<const char*, uint64_t>> list;
  return list;
}
}  // namespace

void mark(const char* step) {
  if (!SpanTrace::enabled()) return;
  steps().emplace_back(step, monotonicNs());
}

std::vector<initmsg::FromInitRecord> take() {
  std::vector<initmsg::FromInitRecord> records;
  for (const auto& [step, ns] : steps()) {
    initmsg::FromInitRecord& rec = records.emplace_back();
    std::memset(&rec, 0, sizeof rec);
    rec.type = initmsg::FromInit::Span;
    rec.c = static_cast<int64_t>(ns);
    std::strncpy(rec.text, step, sizeof rec.text - 1);
  }
  steps().clear();
  return records;
}

}  // namespace gpubox::setupspans
