#!/usr/bin/env perl
# A real Perl Minion worker (Debian's libminion-perl) for the interop tests:
#   perl minion_worker.pl URL [STATUS_JSON]
# It registers tasks of its own (perl_add, perl_sleep, perl_upper), copies STATUS_JSON into the worker's
# status (dequeue_timeout, heartbeat_interval, ...) and runs until INT or TERM. It prints
# "ready <worker id>" when it first waits for a job.
use strict;
use warnings;

use Minion;
use Mojo::JSON qw(decode_json);

my ($url, $json) = @ARGV;
my $status = defined $json ? decode_json($json) : {};
my $minion = Minion->new(Pg => $url);

$minion->add_task(perl_add => sub {
  my ($job, $x, $y) = @_;
  $job->finish({sum => $x + $y, pid => $$});
});
$minion->add_task(perl_sleep => sub {
  my ($job, $seconds) = @_;
  $job->note(pid => $$);
  sleep $seconds;
  $job->finish($seconds);
});
$minion->add_task(perl_upper => sub {
  my ($job, $text) = @_;
  $job->note(seen_by => 'perl');
  $job->finish(uc $text);
});

my $worker = $minion->worker;
$worker->status->{$_} = $status->{$_} for keys %$status;

$| = 1;
my $announced;
$worker->on(wait => sub {
  my $worker = shift;
  print 'ready ', $worker->id, "\n" unless $announced++;
});
$worker->run;
