// JSON documents that people write or edit (recipes): parsed with every object's keys checked
// for repeats, of which the parsed value would keep only the last. Header-only, so that the
// position-independent libraries (the recipes, for the Python module) can use it too.
#pragma once

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace mx::io {

// "" and the document in `out`, or a one-line reason: "not valid JSON" or "key 'K' appears twice
// in one object".
inline std::string parse_json_text(std::string_view text, nlohmann::json* out) {
  using Event = nlohmann::json::parse_event_t;
  std::vector<std::set<std::string>> open_objects;  // the keys seen in each object being read
  std::string repeated;
  const auto callback = [&](int, Event event, nlohmann::json& parsed) {
    if (event == Event::object_start) open_objects.emplace_back();
    if (event == Event::object_end && !open_objects.empty()) open_objects.pop_back();
    if (event == Event::key && !open_objects.empty() && repeated.empty()) {
      const std::string key = parsed.get<std::string>();
      if (!open_objects.back().insert(key).second) repeated = key;
    }
    return true;
  };
  nlohmann::json j = nlohmann::json::parse(text, callback, /*allow_exceptions=*/false);
  if (j.is_discarded()) return "not valid JSON";
  if (!repeated.empty()) return "key '" + repeated + "' appears twice in one object";
  *out = std::move(j);
  return "";
}

}  // namespace mx::io
