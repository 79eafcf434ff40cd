/* fileio.c — durable file-system steps shared by the storage driver and the commands' local state. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int
fileio_fsync_dir(const char *dir, bs_error *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return error_set_errno(err, errno, "could not open directory \"%s\"", dir);
	if (fsync(fd) != 0)
	{
		int e = errno;

		close(fd);
		return error_set_errno(err, e, "could not fsync directory \"%s\"", dir);
	}
	close(fd);
	return BS_OK;
}
