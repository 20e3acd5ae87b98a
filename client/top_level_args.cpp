#include "top_level_args.hpp"

#include "error.hpp"

namespace gpubox::cli {

namespace {

using Command = TopLevel::Command;

// The commands that take only --json: their names, and what they do.
struct Listing {
  Command command;
  const char* name;
  const char* what;
};
constexpr Listing kListings[] = {
    {Command::Ps, "ps", "list your sessions and running sandboxes"},
    {Command::Info, "info", "show the helper's version and kernel features"},
    {Command::Gpus, "gpus", "list the GPUs you may use"},
};

const Listing* listingNamed(const std::string& word) {
  for (const Listing& l : kListings)
    if (word == l.name) return &l;
  return nullptr;
}

const Listing& listingOf(Command command) {
  for (const Listing& l : kListings)
    if (l.command == command) return l;
  throw Error("internal error: not a listing command");
}

}  // namespace

TopLevel parseTopLevel(const std::vector<std::string>& args) {
  TopLevel out;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--socket") {
      if (i + 1 >= args.size()) throw Error("--socket needs a path");
      out.socket = args[++i];
    } else if (a.starts_with("--socket=")) {
      out.socket = a.substr(9);
    } else if (a == "--version") {
      out.command = Command::Version;
      return out;
    } else if (a == "-h" || a == "--help") {
      out.command = Command::Help;
      return out;
    } else {
      break;
    }
  }
  if (i >= args.size()) throw Error("no command given");
  const std::string& word = args[i];
  if (word == "run" || word == "exec" || word == "session") {
    out.command = word == "run" ? Command::Run : word == "exec" ? Command::Exec : Command::Session;
    out.rest.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
    return out;
  }
  const Listing* listing = listingNamed(word);
  if (!listing)
    throw Error((word.starts_with("-") ? "unknown option " : "unknown command ") + word);
  out.command = listing->command;
  for (++i; i < args.size(); ++i) {
    if (args[i] == "--json")
      out.json = true;
    else if (args[i] == "-h" || args[i] == "--help")
      out.help = true;
    else
      throw Error(std::string(listing->name) + ": unexpected " + args[i] +
                  " (it takes only --json)");
  }
  return out;
}

std::string topLevelUsage() {
  return "gpubox: run commands in GPU-capable sandboxes built by gpubox-helper\n"
         "usage: gpubox [--socket PATH] COMMAND ...\n"
         "\n"
         "options:\n"
         "  --socket PATH   the helper's socket (default: $GPUBOX_SOCKET, else "
         "/run/gpubox/gpubox.sock)\n"
         "  --version       print the version and exit\n"
         "  -h, --help      print this and exit\n"
         "\n"
         "commands:\n"
         "  run       run a command in a new sandbox (see gpubox run --help)\n"
         "  session   session create [OPTIONS] | rm NAME | ls: sandboxes that stay\n"
         "  exec      run a command in a session (gpubox exec NAME -- CMD)\n"
         "  ps        list your sessions and running sandboxes [--json]\n"
         "  info      show the helper's version and kernel features [--json]\n"
         "  gpus      list the GPUs you may use [--json]\n";
}

std::string listingUsage(Command command) {
  const Listing& l = listingOf(command);
  return std::string("usage: gpubox [--socket PATH] ") + l.name + " [--json]\n" + l.what +
         "; --json: print JSON\n";
}

}  // namespace gpubox::cli
