#!/usr/bin/env perl
# The Perl side of the interop tests: a real Minion (Debian's libminion-perl) on the database
# given as the first argument. The second argument is what to do; the third, when present, is
# a JSON document of arguments. Every command prints one JSON document on stdout.
use strict;
use warnings;

use Minion;
use Mojo::JSON qw(decode_json encode_json);

my ($url, $command, $json) = @ARGV;
my $input  = defined $json ? decode_json($json) : {};
my $minion = Minion->new(Pg => $url);

my %commands = (

  # Open the database as any Perl application does (auto_migrate included) and report.
  version => sub {
    my $stats = $minion->stats;
    return {version => $minion->backend->pg->migrations->active, workers => $stats->{workers}};
  },

  # Jobs with parents, notes, priority and a delay, for our backend to perform.
  enqueue => sub {
    my $parent  = $minion->enqueue(perl_parent => [1, 'two'] => {notes => {origin => 'perl'}});
    my $child   = $minion->enqueue(perl_child => [{nested => [1, 2]}] => {parents => [$parent], priority => 5});
    my $delayed = $minion->enqueue(perl_delayed => [] => {delay => 3600});
    return {parent => $parent, child => $child, delayed => $delayed};
  },

  # What Perl reads back for some job ids.
  info => sub {
    return {map { $_ => $minion->job($_) ? $minion->job($_)->info : undef } @{$input->{ids}}};
  },

  # Perform every job of our tasks, each in a forked process, as a Perl worker does.
  work => sub {
    $minion->add_task(add => sub { my ($job, $x, $y) = @_; $job->finish({sum => $x + $y}) });
    $minion->add_task(fails => sub { die "boom\n" });
    $minion->add_task(noted => sub { my $job = shift; $job->note(seen_by => 'perl') });
    $minion->perform_jobs({queues => $input->{queues} // ['default']});
    return {performed => 1};
  },

  lock => sub {
    return {locked => $minion->lock($input->{name}, $input->{duration}, {limit => $input->{limit} // 1}) ? 1 : 0};
  },

  is_locked => sub { return {locked => $minion->is_locked($input->{name}) ? 1 : 0} },

  unlock => sub { return {unlocked => $minion->unlock($input->{name}) ? 1 : 0} },

  broadcast => sub {
    return {sent => $minion->broadcast($input->{command}, $input->{args}, $input->{ids}) ? 1 : 0};
  },

  stats => sub { return $minion->stats },

  # Perl's repair (removing finished jobs older than remove_after) and reset of everything.
  repair => sub {
    $minion->remove_after($input->{remove_after}) if defined $input->{remove_after};
    $minion->repair;
    return {repaired => 1};
  },

  reset => sub { $minion->reset({all => 1}); return {reset => 1} },

  # Read as the database is: Minion 10.25 would refuse to migrate a schema newer than its 23,
  # and history reads no column newer than that.
  history => sub { $minion->backend->pg->auto_migrate(0); return $minion->history },
);

my $run = $commands{$command} or die "unknown command: $command\n";
print encode_json($run->()), "\n";
