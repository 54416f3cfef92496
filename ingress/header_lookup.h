#pragma once

#include <functional>
#include <optional>
#include <string_view>

namespace hookfan::ingress {

// Looks up a request header by its lowercase name; nullopt if absent.
using HeaderLookup =
    std::function<std::optional<std::string_view>(std::string_view lowercase_name)>;

}  // namespace hookfan::ingress
