/* test_manifest.c — unit tests for manifests and the archive head. */
#include "manifest.h"
#include "tap.h"

int
main(void)
{
	return done_testing();
}
