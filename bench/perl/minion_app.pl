#!/usr/bin/env perl
# Perl Minion's own worker as the bench's peer: perl minion_app.pl minion worker -j 4
# The database comes from MINION_BENCH_URL (postgresql://...). Its tasks are the bench's:
# noop does nothing, stamp returns the time it started.
use Mojolicious::Lite;
use Time::HiRes ();

plugin Minion => {Pg => $ENV{MINION_BENCH_URL}};
app->minion->add_task(noop => sub { });
app->minion->add_task(stamp => sub { shift->finish(Time::HiRes::time()) });
app->start;
