// A shared library that is not an edgeflow plugin: it exports something else.
#include <edgeflow/abi.h>

extern "C" EF_EXPORT int some_other_library_function() { return 42; }
