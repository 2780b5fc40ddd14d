# Fails when abi.h changed without updating the pinned hash (and, for a break, EF_ABI_MAJOR).
file(SHA256 "${FILE}" actual)
if(NOT actual STREQUAL EXPECTED)
  message(FATAL_ERROR "abi.h changed: sha256 ${actual}, pinned ${EXPECTED}.\n"
    "Appending fields or hooks: bump EF_ABI_MINOR. Changing or removing anything: bump "
    "EF_ABI_MAJOR. Then pin the new hash in tests/unit/runtime/CMakeLists.txt.")
endif()
