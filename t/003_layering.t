# 003_layering.t — the folders' dependency rule (t/tools/check-layering): the tree keeps it, and
# an include against the direction, or an .am listing another folder's file, is named by file and
# line.  No PostgreSQL needed.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $src = $ENV{BACKSTOP_SRCDIR};
my $tool = "$src/t/tools/check-layering";

sub check
{
	my ($top) = @_;
	my $out = `"$tool" "$top" 2>&1`;
	return ($? >> 8, $out);
}

# --- the tree itself --------------------------------------------------------------------------
my ($rc, $out) = check($src);
is($rc, 0, 'the source tree keeps the layering') or diag($out);
like($out, qr/check-layering: \d+ source files, \d+ \.am files: ok/, 'it says what it checked');

# --- a copy of the tree with deliberate mistakes ------------------------------------------------
my $dir = scratch_dir('layering');
system('cp', '-a', map("$src/$_", qw(common decoder archive gate src)), $dir) == 0
  or die "cp failed";
($rc, $out) = check($dir);
is($rc, 0, 'the copy keeps the layering') or diag($out);

sub append_line
{
	my ($file, $text) = @_;
	open my $fh, '<', $file or die "$file: $!";
	my @lines = <$fh>;
	close $fh;
	open $fh, '>>', $file or die "$file: $!";
	print $fh "$text\n";
	close $fh;
	return scalar(@lines) + 1;
}

# archive/ climbing up to the PostgreSQL client layer.
my $n = append_line("$dir/archive/manifest.c", '#include "pgsql.h"');
($rc, $out) = check($dir);
is($rc, 1, 'archive/ including src/pg/ fails');
like($out, qr{^archive/manifest\.c:$n: #include "pgsql\.h" \(src/pg\) from archive: against the layering}m,
	'the include is named by file and line');

# common/ including anything at all, decoder/ including archive/, the PostgreSQL client layer
# including recovery.
my $c = append_line("$dir/common/strbuf.h", '#include "lsn.h"');
my $d = append_line("$dir/decoder/pgoutput.c", '#include "segment.h"');
my $p = append_line("$dir/src/pg/catalog.c", '#include "recover_load.h"');
my $g = append_line("$dir/gate/gate.h", '#include "manifest.h"');
($rc, $out) = check($dir);
is($rc, 1, 'more wrong includes fail');
like($out, qr{^common/strbuf\.h:$c: #include "lsn\.h" \(decoder\) from common}m, 'common/ may use nothing else');
like($out, qr{^decoder/pgoutput\.c:$d: #include "segment\.h" \(archive\) from decoder}m, 'decoder/ may not use archive/');
like($out, qr{^src/pg/catalog\.c:$p: #include "recover_load\.h" \(src/recover\) from src/pg}m,
	'src/pg/ may not use src/recover/');
like($out, qr{^gate/gate\.h:$g: #include "manifest\.h" \(archive\) from gate}m, 'gate/ may use common/ only');
like($out, qr/: 5 problem\(s\)$/m, 'each one counted');

# An include of a header that is nowhere, and an .am listing another folder's source.
system('cp', '-a', map("$src/$_", qw(common decoder archive gate src)), "$dir/x") == 0
  or die "cp failed"
  if mkdir "$dir/x";
$n = append_line("$dir/x/decoder/lsn.c", '#include "nosuch.h"');
my $a = append_line("$dir/x/archive/replay.am", 'libbackstop_a_SOURCES += src/recover/recover_plan.c');
($rc, $out) = check("$dir/x");
is($rc, 1, 'an unknown header and a foreign .am entry fail');
like($out, qr{^decoder/lsn\.c:$n: #include "nosuch\.h": no such header}m, 'the unknown header is named');
like($out, qr{^archive/replay\.am:$a: lists src/recover/recover_plan\.c, which is not in archive/}m,
	'the .am line is named');

done_testing();
